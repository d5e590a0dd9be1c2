"""Bad answers on purpose: invalid JSON and refusals, per model, for cascades and schema checks.

Two knobs of a model's ``Profile`` (``orchestrator.simulator.config``):

    invalid_json_rate   share of JSON-mode answers that are cut short (do not parse)
    refusal_rate        share of plain-text answers replaced by a refusal

An answer that is spoiled keeps its usage (the call is billed as usual). Which
requests are spoiled is decided per *input*, not per request: by the
conversation's first user turn and the model (OpenAI format; the others decide
per request), so a repair of the same input
(the bad answer and a correction appended) fails again, and an escalation to
another model is decided by that model's own rate. ``fault_draw`` says how:

    hash   a stable hash of (model, first user turn) below the rate: independent
           per input, reproducible across runs (the default)
    even   exactly ``rate`` of the distinct inputs a model has seen, spread evenly in
           arrival order (every 10th, 3rd, ... input), for benchmarks that need the
           rate itself rather than a sample of it
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict

from orchestrator.simulator.config import Profile
from orchestrator.simulator.wire import Answer, SimCall, seed_of

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
MEMORY = 100_000
"""Inputs remembered per simulator for ``even`` draws (oldest forgotten first)."""


class Faults:
    """Decides, per model and input, whether to spoil an answer; remembers its decisions."""

    def __init__(self) -> None:
        self.decided: OrderedDict[tuple[str, str, int], bool] = OrderedDict()
        self.seen: dict[tuple[str, str], int] = {}
        self.spoiled: dict[str, int] = {}

    def apply(self, call: SimCall, answer: Answer, profile: Profile) -> None:
        """Spoil ``answer`` in place if this model's rate picks this input."""
        if answer.tool_name is not None:
            return
        kind, rate = ("invalid_json", profile.invalid_json_rate)
        if not call.json_mode:
            kind, rate = ("refusal", profile.refusal_rate)
        topic = call.topic or call.seed  # formats without a topic: decided per request
        if rate <= 0 or not self.picked(call.model, kind, topic, rate, profile.fault_draw):
            return
        answer.text = _cut(answer.text) if kind == "invalid_json" else REFUSAL_TEXT
        self.spoiled[kind] = self.spoiled.get(kind, 0) + 1

    def picked(self, model: str, kind: str, topic: int, rate: float, draw: str) -> bool:
        """Whether the fault ``kind`` at ``rate`` hits input ``topic`` of ``model`` (see above)."""
        if draw == "hash":
            fraction = seed_of("fault", kind, model, topic) % 1_000_000 / 1_000_000
            return fraction < rate
        key = (model, kind, topic)
        known = self.decided.get(key)
        if known is not None:
            self.decided.move_to_end(key)
            return known
        n = self.seen.get(key[:2], 0)
        self.seen[key[:2]] = n + 1
        picked = math.floor((n + 1) * rate + 1e-9) > math.floor(n * rate + 1e-9)
        self.decided[key] = picked
        if len(self.decided) > MEMORY:
            self.decided.popitem(last=False)
        return picked


def _cut(text: str) -> str:
    """JSON that does not parse: the answer cut in half (never valid JSON)."""
    half = text[: max(1, len(text) // 2)]
    try:
        json.loads(half)
    except ValueError:
        return half
    return half + "{"
