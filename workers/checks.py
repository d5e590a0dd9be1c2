"""Output checks: is an answer good enough to finish the job, or should it be repaired/escalated?

After a provider call answers, the attempt loop hands the answer to the
``OutputGate``. Each ``OutputCheck`` that applies to the call may name a problem:

    SchemaCheck       the request declared JSON (``response_format`` json_object or
                      json_schema): the text must parse, and validate against the schema
    RefusalCheck      cascades only: the answer is a refusal ("I'm sorry, but I can't...")
    LowQualityCheck   cascades only: an empty answer, or one the provider filtered

The first problem found decides, as a ``GuardSignal`` the loop already understands:

    schema problem that a local repair fixes (code fences, a trailing comma; see
    ``workers.json_fix``: only for an answer that finished normally, and only when
    the repaired value validates)
        -> accepted as repaired, no second call
    repairable problem (schema), no repair made yet on this deployment
        -> ``RetryAfter(0)`` on the same deployment, with the answer and the error
           appended to the conversation and a request for corrected JSON
    otherwise
        -> ``SkipDeployment``: escalate to the route plan's next deployment (a cascade's
           plan is cheapest first); the deployment is remembered in ``progress.rejected``
           so a later delivery of the job does not call it again

Every rejected answer was billed, so the gate's caller records it as an attempt
with its ledger row (outcome ``rejected``) before the signal is raised. An
answer is only accepted after it passed every check: the job's final output is
validated. New checks are one more object in ``DEFAULT_CHECKS``; see PIPELINES.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.core.json_schemas import NO_FETCH
from orchestrator.core.schemas import Completion, JobRequest, Message
from workers.guards.base import Call, Guard, RetryAfter, SkipDeployment
from workers.json_fix import local_fix
from workers.schema_validator import safe_validator_class

MAX_ERROR_CHARS = 300
REFUSAL = re.compile(
    r"^\s*(i'?m sorry|i am sorry|sorry,|i can(no|')t|i cannot|i'?m (not able|unable)|"
    r"i am (not able|unable)|as an ai\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Problem:
    """What a check found wrong with an answer; ``repairable``: worth one retry in place."""

    check: str
    reason: str
    repairable: bool = False


class OutputCheck(Protocol):
    """One pluggable check of an answer."""

    name: str

    def applies(self, request: JobRequest) -> bool: ...

    def problem(self, request: JobRequest, completion: Completion) -> Problem | None: ...


def _is_cascade(request: JobRequest) -> bool:
    return request.strategy == "cascade"


class SchemaCheck:
    """JSON asked for: the answer must parse, and follow the declared JSON Schema."""

    name = "schema"

    def applies(self, request: JobRequest) -> bool:
        fmt = request.response_format
        return fmt is not None and fmt.is_json and not request.tools

    def problem(self, request: JobRequest, completion: Completion) -> Problem | None:
        try:
            value = json.loads(completion.text)
        except ValueError as exc:
            return Problem(self.name, f"the answer is not valid JSON: {exc}", repairable=True)
        schema = request_schema(request)
        if not schema:
            return None
        error = first_schema_error(schema, value)
        if error is None:
            return None
        return Problem(self.name, f"the answer does not match the schema: {error}", True)


def request_schema(request: JobRequest) -> dict[str, Any] | None:
    """The JSON Schema the request's answer must follow, if it names one."""
    fmt = request.response_format
    return fmt.json_schema.schema_ if fmt is not None and fmt.json_schema else None


def first_schema_error(schema: dict[str, Any], value: Any) -> str | None:
    """The most relevant validation error of ``value`` against ``schema``, or None.

    References resolve inside the schema only (``json_schemas.NO_FETCH``): admission
    refuses any other, and a schema stored before it did is unresolvable here, never
    fetched (jsonschema's default would GET it, redirects and ``file://`` included).
    Patterns run in RE2, in linear time (``workers.schema_validator``): never in the
    backtracking ``re`` a catastrophic pattern such as ``^(a+)+$`` would hang.
    """
    from jsonschema import exceptions, validators

    validator_class = safe_validator_class(validators.validator_for(schema))
    validator = validator_class(schema, registry=NO_FETCH)
    error = exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"[:MAX_ERROR_CHARS]


class RefusalCheck:
    """Cascades: an answer that refuses the task fails (a stronger model may do it)."""

    name = "refusal"

    def applies(self, request: JobRequest) -> bool:
        return _is_cascade(request) and not request.tools

    def problem(self, request: JobRequest, completion: Completion) -> Problem | None:
        if REFUSAL.match(completion.text):
            return Problem(self.name, f"the answer is a refusal: {completion.text[:80]!r}")
        return None


class LowQualityCheck:
    """Cascades: an empty answer, or one cut by the provider's content filter, fails."""

    name = "low_quality"

    def applies(self, request: JobRequest) -> bool:
        return _is_cascade(request)

    def problem(self, request: JobRequest, completion: Completion) -> Problem | None:
        if completion.finish_reason == "content_filter":
            return Problem(self.name, "the provider filtered the answer")
        if not completion.text.strip() and not completion.tool_calls:
            return Problem(self.name, "the answer is empty")
        return None


DEFAULT_CHECKS: tuple[OutputCheck, ...] = (SchemaCheck(), RefusalCheck(), LowQualityCheck())

Rejecter = Callable[[Problem], None]
"""Records a rejected (but billed) answer; supplied per job by the runtime."""


def repair_request(request: JobRequest, answer: str, problem: Problem) -> JobRequest:
    """The same conversation plus the bad answer and a request to fix it."""
    fix = (
        f"Your answer was rejected: {problem.reason[:MAX_ERROR_CHARS]}. "
        "Reply again with only the corrected JSON, and nothing else."
    )
    turns = [
        *request.canonical_messages(),
        Message(role="assistant", content=answer or "(empty)"),
        Message(role="user", content=fix),
    ]
    return request.model_copy(update={"messages": turns, "prompt": None, "system": None})


@dataclass
class OutputGate(Guard):
    """Runs the checks on every answer; skips deployments an earlier delivery rejected."""

    checks: Sequence[OutputCheck] = field(default_factory=lambda: DEFAULT_CHECKS)
    max_repairs: int = 1

    def before_call(self, call: Call) -> None:
        reason = call.progress.rejected.get(call.name)
        if reason is not None:
            raise SkipDeployment(f"{call.name}: answer rejected earlier ({reason})")

    def find_problem(self, request: JobRequest, completion: Completion) -> Problem | None:
        for check in self.checks:
            if check.applies(request):
                found = check.problem(request, completion)
                if found is not None:
                    return found
        return None

    def review(self, call: Call, completion: Completion, reject: Rejecter) -> None:
        """Accept the answer (return) or record it and raise a repair or an escalation.

        A schema problem is first repaired locally (``workers.json_fix``): when that
        gives valid JSON, the answer's text becomes it and no paid repair is made.
        """
        problem = self.find_problem(call.request, completion)
        if problem is None:
            return
        if problem.check == SchemaCheck.name:
            fixed = local_fix(call.request, completion, request_schema(call.request))
            if fixed is not None:
                completion.text = fixed
                return
        repairs = call.progress.repairs.get(call.name, 0)
        if problem.repairable and repairs < self.max_repairs:
            call.progress.repairs[call.name] = repairs + 1
            reject(problem)
            call.request = repair_request(call.request, completion.text, problem)
            raise RetryAfter(0.0, f"{call.name}: repairing: {problem.reason}")
        call.progress.rejected[call.name] = problem.check
        reject(problem)
        raise SkipDeployment(f"{call.name}: {problem.check} check failed: {problem.reason}")
