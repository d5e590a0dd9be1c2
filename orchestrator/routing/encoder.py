"""Prompt features shared by the routing models: a word-embedding vector and char n-grams.

    embed(text)          -> np.ndarray (256,) float32, unit length (or zeros)
    embed_many(texts)    -> np.ndarray (n, 256)          batch form, for training
    ngrams(text)         -> Grams(ids, values)            hashed char n-grams, sparse
    gram_text(text)      -> dict[int, str]                 bucket id -> an n-gram, for reasons
    gram_spans(text, ..) -> (str, buckets, middles, spaces) where buckets occur, for reasons
    features(text)       -> Features(embedding, grams)    both, from one text window
    window(text)         -> str                           the part of a prompt that is read
    encoder_info()       -> dict                          what an artefact records about us

The encoder is ``wordllama``'s ``l2_supercat`` 256-d token-embedding table and its
Llama tokenizer, both shipped inside the ``wordllama`` wheel (``pip`` dependency).
An embedding is the mean of the table's rows for the prompt's tokens, L2-normalised:
the same numbers as ``WordLlama.load(cache_dir=<package dir>, disable_download=True)
.embed(text, norm=True)``, read straight from the wheel's two files with
``tokenizers`` and ``safetensors``. ``wordllama`` itself is never imported: its
``inference`` module calls ``logging.basicConfig(level=INFO)`` on import (it would
reconfigure the API's logging), and its default lookup tries to download. Nothing
here touches the network; a missing file is a ``ConfigError``.

Char n-grams (lower-cased, whitespace squeezed, n in ``GRAM_SIZES``) are hashed into
``GRAM_BUCKETS`` buckets with a vectorised polynomial hash (no scikit-learn at run
time); values are ``1 + log(count)``, L2-normalised. They carry what an averaged
embedding blurs: code punctuation, scripts other than Latin, LaTeX.

Cost: only ``window(text)`` is read (the head and the tail, where a prompt says
what it wants), so a 4,000-character prompt costs the same as a 1,800-character
one (``switchyard bench classify`` measures it; BENCHMARKS.md). A thread's last
embedding is remembered, so a prompt embedded for its tier and then for
strong/weak is tokenized once. The table (32 MB as float32) and the tokenizer
load once, lazily, under a lock; every function is thread-safe.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.core.errors import ConfigError

DIM = 256
WEIGHTS_FILE = "weights/l2_supercat_256.safetensors"
TOKENIZER_FILE = "tokenizers/l2_supercat_tokenizer_config.json"
TENSOR_KEY = "embedding.weight"
HEAD_CHARS = 1_200
TAIL_CHARS = 600
GRAM_SIZES = (2, 3, 4)
GRAM_BUCKETS = 1 << 16  # 2**18 measured no better on the tier corpus
_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Grams:
    """A sparse char n-gram vector: sorted bucket ids and their (L2-normalised) values."""

    ids: IntArray
    values: FloatArray


@dataclass(frozen=True)
class Features:
    """Everything a routing model reads from one prompt, computed once."""

    embedding: FloatArray
    grams: Grams


class _Encoder:
    """The loaded table and tokenizer; one per process, built on first use."""

    def __init__(self, root: Path) -> None:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(root / TOKENIZER_FILE))
            with safe_open(str(root / WEIGHTS_FILE), framework="np") as handle:
                table = handle.get_tensor(TENSOR_KEY)
        except Exception as exc:  # the files are the wheel's; any failure means a bad install
            raise ConfigError(f"cannot load the wordllama encoder from {root}: {exc}") from exc
        # float32: numpy sums float16 rows ~5x slower; 32 MB instead of 16
        self.table: FloatArray = np.ascontiguousarray(table, dtype=np.float32)
        self.rows = int(self.table.shape[0])

    def ids(self, texts: list[str]) -> list[list[int]]:
        # the same ids without the offsets and alignments (tokenizers >= 0.20): a quarter
        # less time on a 4,000-character prompt
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        return [e.ids for e in encode(texts, add_special_tokens=False)]

    def mean(self, ids: list[int]) -> FloatArray:
        if not ids:
            return np.zeros(DIM, dtype=np.float32)
        index = np.minimum(np.asarray(ids, dtype=np.int64), self.rows - 1)
        vector: FloatArray = self.table[index].sum(axis=0)
        norm = float(np.linalg.norm(vector))  # the mean's direction: no need to divide by len
        return vector / np.float32(norm) if norm > 0 else vector


_lock = threading.Lock()
_loaded: _Encoder | None = None
_last = threading.local()


def package_dir() -> Path:
    """The installed ``wordllama`` package folder, found without importing it."""
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the tier classifier needs the 'wordllama' package (pip install)")
    return Path(next(iter(spec.submodule_search_locations)))


def _encoder() -> _Encoder:
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _Encoder(package_dir())
    return _loaded


def load() -> None:
    """Load the encoder now (e.g. at process start) instead of on the first prompt."""
    _encoder()


def window(text: str) -> str:
    """The head and the tail of ``text``: what the features read."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return f"{text[:HEAD_CHARS]}\n{text[-TAIL_CHARS:]}"


def embed(text: str) -> FloatArray:
    """The unit-length mean token embedding of ``window(text)`` (zeros for empty text).

    Each thread remembers its last answer: routing embeds the same prompt for the tier
    and for strong/weak, and the second call costs a string comparison.
    """
    read = window(text)
    last: tuple[str, FloatArray] | None = getattr(_last, "embedded", None)
    if last is not None and last[0] == read:
        return last[1]
    encoder = _encoder()
    vector = encoder.mean(encoder.ids([read])[0])
    vector.flags.writeable = False  # shared with the next caller of the same text
    _last.embedded = (read, vector)
    return vector


def embed_many(texts: list[str]) -> FloatArray:
    """``embed`` for many texts at once (tokenized in parallel): shape (len(texts), DIM)."""
    encoder = _encoder()
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for start in range(0, len(texts), 256):
        chunk = [window(t) for t in texts[start : start + 256]]
        for offset, ids in enumerate(encoder.ids(chunk)):
            out[start + offset] = encoder.mean(ids)
    return out


def _squeezed(text: str) -> str:
    return " " + " ".join(window(text).lower().split()) + " "


def _hashes(codes: npt.NDArray[np.uint64], n: int, buckets: int) -> npt.NDArray[np.uint64]:
    """The bucket of every n-gram of ``codes`` (code points), in order."""
    count = len(codes) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):  # the hash wraps modulo 2**64 on purpose
        h = np.full(count, np.uint64(n), dtype=np.uint64)
        for k in range(n):
            h = h * _PRIME + codes[k : count + k]
        return ((h * _MIX) >> np.uint64(32)) % np.uint64(buckets)


def _code_points(squeezed: str) -> npt.NDArray[np.uint64]:
    return np.frombuffer(squeezed.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


@dataclass(frozen=True)
class _Hashed:
    """Every n-gram of one window, hashed once per thread and reused (see ``ngrams``)."""

    read: str
    buckets: int
    squeezed: str
    codes: npt.NDArray[np.uint64]
    hashed: IntArray  # the bucket of every n-gram, sizes in GRAM_SIZES order
    middles: IntArray  # the offset of each one's middle in ``squeezed``
    grams: Grams


def _hashed(text: str, buckets: int) -> _Hashed:
    read = window(text)
    last: _Hashed | None = getattr(_last, "hashed", None)
    if last is not None and last.buckets == buckets and last.read == read:
        return last
    squeezed = " " + " ".join(read.lower().split()) + " "
    codes = _code_points(squeezed) if read.strip() else np.zeros(0, dtype=np.uint64)
    parts = [_hashes(codes, n, buckets).astype(np.int64) for n in GRAM_SIZES]
    hashed = np.concatenate(parts)
    sizes = zip(parts, GRAM_SIZES, strict=True)
    middles = np.concatenate([np.arange(len(h), dtype=np.int64) + n // 2 for h, n in sizes])
    ids, counts = np.unique(hashed, return_counts=True)
    values = (1.0 + np.log(counts)).astype(np.float32)
    if values.size:
        values /= np.float32(np.linalg.norm(values))
    found = _Hashed(read, buckets, squeezed, codes, hashed, middles, Grams(ids, values))
    _last.hashed = found
    return found


def ngrams(text: str, buckets: int = GRAM_BUCKETS) -> Grams:
    """Hashed char n-grams of ``window(text)``: sizes ``GRAM_SIZES``, ids below ``buckets``.

    Like ``embed``, each thread remembers its last answer (the tier model and the
    ``gain`` scorer's tier prior read the same prompt).
    """
    return _hashed(text, buckets).grams


def gram_text(
    text: str, buckets: int = GRAM_BUCKETS, only: frozenset[int] | None = None
) -> dict[int, str]:
    """Bucket id -> the first n-gram of ``window(text)`` that hashes there (to name features).

    ``only`` limits the answer to those buckets (and is much faster on long texts).
    """
    squeezed = _squeezed(text)
    codes = _code_points(squeezed)
    out: dict[int, str] = {}
    wanted = None
    if only is not None:
        wanted = np.zeros(buckets, dtype=bool)
        wanted[np.fromiter(only, dtype=np.int64, count=len(only))] = True
    for n in GRAM_SIZES:
        hashed = _hashes(codes, n, buckets).astype(np.int64)
        places = range(len(hashed)) if wanted is None else np.flatnonzero(wanted[hashed])
        for i in places:
            out.setdefault(int(hashed[i]), squeezed[i : i + n])
    return out


def gram_spans(text: str, buckets: int, only: IntArray) -> tuple[str, IntArray, IntArray, IntArray]:
    """Where the ``only`` buckets occur in the squeezed window.

    Returns the window, the buckets found, the offset of each one's middle, and the
    offsets of the window's spaces (so a caller can tell which word holds each).
    """
    found = _hashed(text, buckets)
    wanted = np.zeros(buckets, dtype=bool)
    wanted[only] = True  # a table lookup: np.isin costs 20 times more here
    at = np.flatnonzero(wanted[found.hashed])
    spaces = np.flatnonzero(found.codes == 32).astype(np.int64)
    return found.squeezed, found.hashed[at], found.middles[at], spaces


def features(text: str) -> Features:
    """``embed(text)`` and ``ngrams(text)`` together."""
    return Features(embed(text), ngrams(text))


def encoder_info() -> dict[str, Any]:
    """What a model artefact records so a different encoder is refused, not misread."""
    return {
        "encoder": "wordllama l2_supercat 256 (mean of token rows, L2-normalised)",
        "dim": DIM,
        "window": [HEAD_CHARS, TAIL_CHARS],
        "gram_sizes": list(GRAM_SIZES),
        "gram_buckets": GRAM_BUCKETS,
    }
