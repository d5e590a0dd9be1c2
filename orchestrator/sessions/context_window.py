"""Context assembly: a session's conversation, fitted to one deployment's window.

The policy, applied before every attempt (so a fallback to a smaller window
rebuilds the context for that window):

    budget   = (context_window - max_tokens sent - tools) * (1 - SAFETY) / token_ratio
    kept     = the system prompt (the request's, else the session's), verbatim
             + the new turns of this request, verbatim
             + the most recent earlier turns that fit, starting at a user turn
    dropped  = every earlier turn before them; they are replaced by a *digest*:
               one system message naming how many turns were dropped and quoting
               the start of each (newest first, at most DIGEST_SHARE of the budget)

When the kept history no longer fits, it is cut back to REFIT_TARGET of the
room, not just below it, and the start is remembered with the session: the
prompt prefix then stays the same for several turns, so a provider's prompt
cache (and Anthropic's ``cache_control`` prefix) keeps hitting.

Token counts are ``orchestrator.core.tokens`` estimates (no network, err high),
scaled by the session's ``token_ratio``: what providers reported over what we
estimated, floored at 1, so a provider that counts more tightens the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.core.schemas import Message
from orchestrator.core.tokens import estimate_message_tokens, estimate_tokens

SAFETY = 0.02
REFIT_TARGET = 0.75
DIGEST_SHARE = 0.10
DIGEST_CHARS_PER_TURN = 160
MIN_RATIO, MAX_RATIO = 1.0, 4.0


@dataclass(frozen=True)
class Fit:
    """What fits: the window, the output reserved, other prompt tokens (tools)."""

    window: int
    reserved: int
    extra_tokens: int = 0
    ratio: float = 1.0

    @property
    def budget(self) -> int:
        """Estimated prompt tokens allowed (before scaling by the ratio)."""
        room = (self.window - self.reserved - self.extra_tokens) * (1 - SAFETY)
        return max(0, int(room / clamp_ratio(self.ratio)))


@dataclass(frozen=True)
class Assembled:
    """The messages to send and how they were chosen."""

    messages: list[Message]
    start: int  # index in the history of the first earlier turn kept
    dropped: int
    estimated_tokens: int  # unscaled estimate of ``messages``


def clamp_ratio(ratio: float) -> float:
    return min(MAX_RATIO, max(MIN_RATIO, ratio))


def next_ratio(old: float, reported: int, estimated: int) -> float:
    """The session's ratio after one call: an average weighted 70/30 towards the past."""
    if reported <= 0 or estimated <= 0:
        return old
    return clamp_ratio(0.7 * old + 0.3 * (reported / estimated))


def assemble(
    system: str | None,
    history: Sequence[Message],
    new_turns: Sequence[Message],
    fit: Fit,
    *,
    start_hint: int = 0,
) -> Assembled:
    """The context for one call: system, digest of dropped turns, recent turns, new turns."""
    head = [Message(role="system", content=system)] if system else []
    fixed = sum(estimate_message_tokens(m) for m in [*head, *new_turns])
    costs = [estimate_message_tokens(m) for m in history]
    digest_cap = int(fit.budget * DIGEST_SHARE)
    room = fit.budget - fixed
    start = _boundary(history, min(max(0, start_hint), len(history)))
    if not _fits(costs, start, room, digest_cap):
        start = _refit(history, costs, room, digest_cap)
    digest = _digest(history[:start], digest_cap)
    messages = [*head, *digest, *history[start:], *new_turns]
    total = sum(estimate_message_tokens(m) for m in messages)
    return Assembled(messages, start, start, total)


def _fits(costs: Sequence[int], start: int, room: float, digest_cap: int) -> bool:
    reserved = digest_cap if start > 0 else 0
    return sum(costs[start:]) + reserved <= room


def _boundary(history: Sequence[Message], start: int) -> int:
    """The first user turn at or after ``start`` (tool results never lose their call)."""
    while start < len(history) and history[start].role != "user":
        start += 1
    return start


def _refit(history: Sequence[Message], costs: Sequence[int], room: int, digest_cap: int) -> int:
    """The earliest user-turn start whose turns fill at most REFIT_TARGET of the room."""
    target = (room - digest_cap) * REFIT_TARGET
    total, start = 0, len(history)
    for index in range(len(history) - 1, -1, -1):
        total += costs[index]
        if total > target:
            break
        if history[index].role == "user":
            start = index
    return start


def _digest(dropped: Sequence[Message], cap_tokens: int) -> list[Message]:
    """One system message standing in for the dropped turns (empty if none were dropped)."""
    if not dropped:
        return []
    intro = f"Earlier in this conversation ({len(dropped)} messages not shown):"
    budget_chars = max(0, (cap_tokens - 8) * 4 - len(intro))
    lines: list[str] = []
    for message in reversed(dropped):
        text = " ".join(message.text().split())[:DIGEST_CHARS_PER_TURN]
        line = f"\n- {message.role}: {text}"
        if not text or len(line) > budget_chars:
            break
        lines.append(line)
        budget_chars -= len(line)
    content = intro + "".join(reversed(lines))
    if estimate_tokens(content) > cap_tokens:
        content = intro
    return [Message(role="system", content=content)]
