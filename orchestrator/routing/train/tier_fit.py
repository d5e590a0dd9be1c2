"""Fitting the tier classifier: scikit-learn's logistic regression, imported only here.

    fit(rows, seed=SEED)  -> artefact dict (``tier_model.TierModel`` reads it)
    scores(model, rows)   -> {"n", "accuracy", "macro_f1", "per_tier"}

Features are the shared encoder's: the 256-d embedding times ``EMBEDDING_SCALE``
beside the hashed char n-grams (each part has unit length, so the scale sets
their balance). One multinomial L2 logistic regression (lbfgs, ``C``), weighted
by ``tier_data.weights``, on one BLAS thread so the same rows give the same bytes.

Same bytes on another machine too: OpenBLAS picks its kernels for the CPU it finds
(SkylakeX on an AVX-512 Intel, Haswell on an AMD EPYC that has AVX-512 as well), and
their sums round differently, so the training command runs with
``OPENBLAS_CORETYPE=BLAS_CORE`` (``run_pinned``): the AVX2 kernels every x86-64
server of the last decade has.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.core.errors import ConfigError
from orchestrator.routing import encoder
from orchestrator.routing.tier_model import FORMAT, TierModel, pack
from orchestrator.routing.train.tier_data import TIERS, Labelled, weights

SEED = 21
C = 4.0
EMBEDDING_SCALE = 0.5
BLAS_CORE = "Haswell"
Progress = Callable[[Iterable[Any], str], Iterable[Any]]


def run_pinned(module: str, argv: Sequence[str] | None) -> None:
    """Run ``python -m module argv`` (``argv`` None: this process's own arguments) again in
    this process's place with OpenBLAS held to ``BLAS_CORE``, unless it already is or this
    is not x86-64 (then: return and go on).

    OpenBLAS reads ``OPENBLAS_CORETYPE`` once, when numpy loads it, which importing
    ``orchestrator.routing`` has already done; hence a new process.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return
    if os.environ.get("OPENBLAS_CORETYPE") == BLAS_CORE:
        return
    env = dict(os.environ, OPENBLAS_CORETYPE=BLAS_CORE)
    sys.stdout.flush()
    args = sys.argv[1:] if argv is None else argv
    os.execve(sys.executable, [sys.executable, "-m", module, *args], env)


def check_rebuilt(out: Path, text: str) -> int:
    """``--check`` of a training command: print whether ``text`` is ``out``'s bytes; the
    exit status (0 iff it is)."""
    same = out.is_file() and out.read_text(encoding="utf-8") == text
    print(json.dumps({"rebuilt_identical": same}))
    return 0 if same else 1


def _quiet(items: Iterable[Any], _: str) -> Iterable[Any]:
    return items


def _sklearn() -> tuple[Any, Any, Any]:
    try:
        import scipy.sparse as sparse
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits
    except ImportError as exc:
        raise ConfigError("training needs: pip install 'switchyard-llm[learned]'") from exc
    return sparse, LogisticRegression, threadpool_limits


def matrix(texts: Sequence[str], scale: float, progress: Progress = _quiet) -> Any:
    """Rows of [scale * embedding, n-grams] as a scipy CSR matrix."""
    sparse, _, _ = _sklearn()
    emb = encoder.embed_many(list(texts)) * np.float32(scale)
    ids, values, starts = [], [], [0]
    for text in progress(texts, "n-grams"):
        grams = encoder.ngrams(text)
        ids.append(grams.ids + encoder.DIM)
        values.append(grams.values)
        starts.append(starts[-1] + len(grams.ids))
    columns = np.concatenate([np.tile(np.arange(encoder.DIM), len(texts)), *ids])
    dense_rows = np.repeat(np.arange(len(texts)), encoder.DIM)
    sparse_rows = np.repeat(np.arange(len(texts)), np.diff(starts))
    data = np.concatenate([emb.ravel(), *values])
    shape = (len(texts), encoder.DIM + encoder.GRAM_BUCKETS)
    rows = np.concatenate([dense_rows, sparse_rows])
    return sparse.csr_matrix((data, (rows, columns)), shape=shape, dtype=np.float64)


def fit(
    rows: Sequence[Labelled],
    *,
    seed: int = SEED,
    c: float = C,
    scale: float = EMBEDDING_SCALE,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """The artefact of a model fitted on ``rows`` (every tier must be present)."""
    missing = [t.value for t in TIERS if not any(r.tier is t for r in rows)]
    if missing:
        raise ConfigError(f"no training rows for tier(s) {', '.join(missing)}")
    _, logistic, limits = _sklearn()
    texts = [r.prompt for r in rows]
    x = matrix(texts, scale, progress)
    y = np.array([TIERS.index(r.tier) for r in rows])
    with limits(limits=1):
        model = logistic(C=c, max_iter=3000, random_state=seed)
        model.fit(x, y, sample_weight=np.array(weights(rows)))
    coef = model.coef_.astype(np.float32)
    emb_w, gram_w = coef[:, : encoder.DIM] * np.float32(scale), coef[:, encoder.DIM :]
    return {
        "format": FORMAT,
        "tiers": [t.value for t in TIERS],
        "encoder": encoder.encoder_info(),
        "embedding_scale": 1.0,  # folded into the weights below
        "intercept": [round(float(b), 6) for b in model.intercept_],
        "embedding_weights": pack(emb_w),
        "gram_weights": pack(gram_w),
        "training": {
            "seed": seed,
            "c": c,
            "embedding_scale": scale,
            "rows": dict(Counter(r.tier.value for r in rows)),
        },
    }


def scores(model: TierModel, rows: Sequence[Labelled]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-tier recall of ``model`` on ``rows``."""
    pairs = [(r.tier, model.predict(r.prompt).tier) for r in rows]
    per_tier: dict[str, dict[str, float]] = {}
    for tier in TIERS:
        tp = sum(1 for want, got in pairs if want is tier and got is tier)
        support = sum(1 for want, _ in pairs if want is tier)
        predicted = sum(1 for _, got in pairs if got is tier)
        p, r = tp / predicted if predicted else 0.0, tp / support if support else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_tier[tier.value] = {"recall": round(r, 4), "f1": round(f1, 4), "support": support}
    n = len(pairs) or 1
    return {
        "n": len(pairs),
        "accuracy": round(sum(1 for w, g in pairs if w is g) / n, 4),
        "macro_f1": round(sum(v["f1"] for v in per_tier.values()) / len(TIERS), 4),
        "per_tier": per_tier,
    }
