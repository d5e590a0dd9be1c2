"""Context assembly (sessions.context_window): what is kept, dropped and digested for a window."""

from __future__ import annotations

from orchestrator.admission.session_hook import prefer
from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest, Message
from orchestrator.core.tokens import estimate_request_tokens
from orchestrator.routing import route
from orchestrator.sessions.context_window import Fit, assemble, next_ratio

SYSTEM = "You are a patient tutor. Always answer in full sentences."


def conversation(turns: int, chars: int = 400) -> list[Message]:
    """``turns`` user/assistant pairs of about ``chars`` characters each, numbered."""
    out: list[Message] = []
    for i in range(turns):
        out.append(Message(role="user", content=f"question {i}: " + "q" * chars))
        out.append(Message(role="assistant", content=f"answer {i}: " + "a" * chars))
    return out


def test_everything_is_kept_while_it_fits() -> None:
    # Given a short conversation and a large window
    history, new = conversation(3), [Message(role="user", content="and now?")]
    # When it is assembled
    built = assemble(SYSTEM, history, new, Fit(window=8192, reserved=256))
    # Then nothing is dropped and the order is system, history, new turn
    assert built.dropped == 0 and built.start == 0
    assert built.messages == [Message(role="system", content=SYSTEM), *history, *new]


def test_a_long_conversation_keeps_system_and_last_turn_and_fits_the_window() -> None:
    # Given 200 earlier turns (far beyond a 4k window)
    history, new = conversation(100), [Message(role="user", content="the very last question")]
    fit = Fit(window=4096, reserved=512)
    # When it is assembled
    built = assemble(SYSTEM, history, new, fit)
    # Then it fits the window with the output reserved
    assert estimate_request_tokens(built.messages) + fit.reserved <= fit.window
    assert built.estimated_tokens == estimate_request_tokens(built.messages)
    # And the system prompt is first and the new turn last, verbatim
    assert built.messages[0] == Message(role="system", content=SYSTEM)
    assert built.messages[-1] == new[-1]
    # And the kept history is the most recent part, starting at a user turn
    kept = built.messages[2:-1]
    assert kept == history[built.start :] and kept[0].role == "user"
    assert history[-1] in kept
    # And the dropped turns are replaced by one digest naming how many there were
    digest = built.messages[1]
    assert digest.role == "system" and f"({built.start} messages not shown)" in digest.text()
    assert built.dropped == built.start > 0


def test_the_start_is_kept_stable_until_the_window_overflows_again() -> None:
    # Given a conversation fitted once
    fit = Fit(window=4096, reserved=512)
    history = conversation(40)
    first = assemble(SYSTEM, history, [Message(role="user", content="next")], fit)
    # When two more turns are added and it is fitted again from the remembered start
    longer = [*history, *conversation(1)]
    second = assemble(
        SYSTEM, longer, [Message(role="user", content="next")], fit, start_hint=first.start
    )
    # Then the start did not move (the prompt prefix is the same: caches keep hitting)
    assert second.start == first.start
    # When many more turns are added, the start moves forward and it still fits
    much_longer = [*history, *conversation(30)]
    third = assemble(
        SYSTEM, much_longer, [Message(role="user", content="next")], fit, start_hint=first.start
    )
    assert third.start > first.start
    assert estimate_request_tokens(third.messages) + fit.reserved <= fit.window


def test_a_smaller_window_rebuilds_a_smaller_context() -> None:
    # Given a context fitted to 8k
    history, new = conversation(60), [Message(role="user", content="go on")]
    big = assemble(SYSTEM, history, new, Fit(window=8192, reserved=256))
    # When the same conversation is fitted to 4k, starting from the 8k start
    small = assemble(SYSTEM, history, new, Fit(window=4096, reserved=256), start_hint=big.start)
    # Then it starts later and fits 4k
    assert small.start > big.start
    assert estimate_request_tokens(small.messages) + 256 <= 4096


def test_tool_results_never_lose_their_call() -> None:
    # Given history whose cut would fall between a tool call and its result
    history = conversation(30)
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    history[31] = Message.model_validate({"role": "assistant", "tool_calls": [call]})
    history[32] = Message(role="tool", content="42", tool_call_id="c1")
    # When it is fitted at every start around the cut
    for hint in range(28, 36):
        built = assemble(
            None,
            history,
            [Message(role="user", content="x")],
            Fit(window=8192, reserved=256),
            start_hint=hint,
        )
        # Then the first kept earlier message is always a user turn
        first_kept = history[built.start] if built.start < len(history) else None
        assert first_kept is None or first_kept.role == "user"


def test_reported_usage_above_the_estimate_tightens_the_budget() -> None:
    # Given a provider that reports twice the tokens we estimated
    ratio = 1.0
    for _ in range(10):
        ratio = next_ratio(ratio, reported=2000, estimated=1000)
    # Then the ratio approaches 2 and the budget shrinks with it
    assert 1.9 < ratio <= 2.0
    assert Fit(4096, 512, ratio=ratio).budget < Fit(4096, 512).budget / 1.8
    # And a provider that counts fewer never loosens it below our estimate
    assert next_ratio(1.0, reported=500, estimated=1000) == 1.0
    assert next_ratio(1.3, reported=0, estimated=1000) == 1.3


def test_affinity_puts_the_last_deployment_first_only_for_the_same_tier() -> None:
    catalog = load_catalog(Settings())
    decision = route(JobRequest(prompt="hello", tier="fast"), catalog)
    assert len(decision.plan) >= 2
    second = decision.plan[1].name
    # The deployment that served the last turn moves to the front, the rest keep their order
    moved = prefer(decision, second, "fast")
    assert [d.name for d in moved.plan] == [second] + [
        d.name for d in decision.plan if d.name != second
    ]
    assert any("session affinity" in r for r in moved.reasons)
    # Not when the tier changed, nor for a deployment outside the plan
    assert prefer(decision, second, "code") is decision
    assert prefer(decision, "no-such-deployment", "fast") is decision
