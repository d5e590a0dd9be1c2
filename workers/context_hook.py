"""Sessions in the worker: fit the conversation to each deployment, then remember the turn.

``SessionContextGuard`` runs first among the guards. Before the first call to a
deployment it loads the session (tenant-scoped), assembles the context for that
deployment's window (``orchestrator.sessions.context_window``) and puts the result in
``call.request``, so the adapters send it as is; a fallback builds a new
``Call`` and so a new context for its own window. Once an answer is accepted
(it passed the output checks) it appends the request's new turns and the answer
to the session, with the deployment and tier for the next turn's affinity and
the provider's reported prompt tokens for the token ratio. Requests without ``session_id`` pass
untouched.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.cache.responses import ResponseCache
from orchestrator.core.config import Settings
from orchestrator.core.schemas import Completion, JobRequest, Message
from orchestrator.core.tokens import estimate_tokens, estimate_tools_tokens
from orchestrator.sessions.context_window import Assembled, Fit, assemble, next_ratio
from orchestrator.store import sessions
from orchestrator.store.db import session_scope
from workers.guards.base import Call, Guard
from workers.guards.cache import ResponseCacheGuard

log = logging.getLogger(__name__)
JSON_INSTRUCTION_TOKENS = 64  # what an adapter may add for a JSON response format


@dataclass
class _Pending:
    """The context built for one ``Call`` (identity), kept until it answers."""

    call: Call
    original: JobRequest
    system: str | None
    assembled: Assembled
    ratio: float


def fit_for(call: Call, request: JobRequest, ratio: float) -> Fit:
    """The window, reserved output and extra prompt tokens for this call's deployment."""
    deployment = call.deployment
    extra = estimate_tools_tokens(request.tools)
    if request.response_format is not None and request.response_format.is_json:
        schema = request.response_format.model_dump_json()
        extra += JSON_INSTRUCTION_TOKENS + estimate_tokens(schema)
    reserved = min(request.max_tokens, deployment.max_output_tokens)
    return Fit(deployment.context_window, reserved, extra, ratio)


def answer_message(completion: Completion) -> Message:
    """The assistant turn a completion adds to the conversation."""
    if completion.tool_calls:
        calls = list(completion.tool_calls)
        return Message(role="assistant", content=completion.text or None, tool_calls=calls)
    return Message(role="assistant", content=completion.text)


class SessionContextGuard(Guard):
    """Assembles a session's context before each deployment and records each answer."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    def _pending(self, call: Call) -> _Pending | None:
        pending: _Pending | None = getattr(self._local, "pending", None)
        return pending if pending is not None and pending.call is call else None

    def before_call(self, call: Call) -> None:
        request = call.request
        if request.session_id is None or self._pending(call) is not None:
            return  # not a session, or already assembled for this call (a retry)
        with session_scope(self.engine) as db:
            row = sessions.get_session(db, tenant_id=call.tenant_id, session_id=request.session_id)
            past = sessions.history(db, tenant_id=call.tenant_id, session_id=request.session_id)
            stored_system = row.system if row is not None else None
            ratio = row.token_ratio if row is not None else 1.0
            hint = row.context_start if row is not None else 0
        system = request.system_prompt() or stored_system
        fit = fit_for(call, request, ratio)
        built = assemble(system, past, request.turns(), fit, start_hint=hint)
        call.request = request.model_copy(
            update={"messages": built.messages, "system": None, "prompt": None}
        )
        call.input_tokens = built.estimated_tokens
        self._local.pending = _Pending(call, request, request.system_prompt(), built, ratio)

    def after_accepted(self, call: Call, completion: Completion) -> None:
        """Append the turn and its (accepted) answer to the session."""
        pending = self._pending(call)
        if pending is None:
            return
        self._local.pending = None
        request = pending.original
        assert request.session_id is not None
        estimated = pending.assembled.estimated_tokens + estimate_tools_tokens(request.tools)
        turn = sessions.TurnRecord(
            job_id=call.job_id,
            system=pending.system,
            messages=[*request.turns(), answer_message(completion)],
            deployment=call.deployment.name,
            tier=call.tier,
            context_start=pending.assembled.start,
            context_window=call.deployment.context_window,
            token_ratio=next_ratio(pending.ratio, completion.usage.input_tokens, estimated),
        )
        try:
            with session_scope(self.engine) as db:
                sessions.record_turn(
                    db, tenant_id=call.tenant_id, session_id=request.session_id, turn=turn
                )
        except SQLAlchemyError as exc:  # the answer stands; the session misses this turn
            log.error(
                "session %s: turn of %s not recorded: %s",
                request.session_id,
                call.job_id,
                type(exc).__name__,
            )


def conversation_guards(settings: Settings, engine: Engine, client: redis.Redis) -> list[Guard]:
    """The guards that run before all others: session context, then the response cache."""
    cache = ResponseCache(
        client,
        prefix=settings.redis_key_prefix,
        ttl_s=settings.response_cache_ttl_s,
        wait_s=settings.response_cache_wait_s,
    )
    return [SessionContextGuard(engine), ResponseCacheGuard(cache)]
