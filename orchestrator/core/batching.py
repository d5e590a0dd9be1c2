"""Requests from many threads served together, a batch at a time (group commit).

A thread that asks while no batch is being served serves one itself: everything
asked so far, then whatever was asked meanwhile, until its own ask is answered;
then the oldest waiting ask (if any) takes over, so no thread serves others for
longer than its own answer takes. The others wait for their answer. Nothing is
delayed to fill a batch: one thread alone is served at once, and requests batch
up only while a batch is already in flight, unless the combiner lingers: then a
thread that finds fewer than ``fill`` asks waiting waits ``linger_s`` before it
serves (for batch work, where a millisecond buys a fuller statement). Inside
``alone()`` a thread's asks skip all this and are served at once, by itself: work
that must not wait for, or serve, anyone else's (an interactive job's).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, cast

import redis

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
R = TypeVar("R")
_thread = threading.local()


@contextmanager
def alone() -> Iterator[None]:
    """Within the block, every ``Combiner.ask`` of this thread is served alone, at once."""
    before = getattr(_thread, "alone", False)
    _thread.alone = True
    try:
        yield
    finally:
        _thread.alone = before


def is_alone() -> bool:
    """Is this thread inside ``alone()``?"""
    return bool(getattr(_thread, "alone", False))


class _Ask(Generic[K, R]):
    __slots__ = ("answer", "answered", "done", "error", "key", "lead", "value")

    def __init__(self, key: K, value: object) -> None:
        self.key, self.value = key, value
        self.answer: R | None = None
        self.error: BaseException | None = None
        self.answered = False
        self.lead = False  # handed the serving over: serve until answered
        # released once: answered, or made to lead (a bare lock: an Event is a
        # Condition built in Python, and one per ask showed in a busy worker's profile)
        self.done = threading.Lock()


class Combiner(Generic[K, R]):
    """``ask(key, value)`` returns ``serve({key: value, ...})[key]``, batching concurrent asks.

    ``serve`` gets at most ``max_batch`` keys, never the same key twice in one
    batch (a repeated key waits for the next), and must answer every key it got;
    if it raises, every ask in that batch raises the same error.
    """

    def __init__(
        self,
        serve: Callable[[dict[K, object]], dict[K, R]],
        *,
        max_batch: int = 64,
        linger_s: float = 0.0,
        fill: int = 1,
    ):
        self._serve = serve
        self._max = max_batch
        # a thread that starts serving with fewer than ``fill`` asks waiting first waits
        # ``linger_s`` for more (batch work only: ``alone()`` asks never come here); one
        # handed the serving by the thread before does not: its asks waited a round
        # already
        self._linger_s, self._fill = linger_s, fill
        self._lock = threading.Lock()
        self._waiting: list[_Ask[K, R]] = []
        self._serving = False

    def ask(self, key: K, value: object = None) -> R:
        if is_alone():
            return self._serve({key: value})[key]
        mine: _Ask[K, R] = _Ask(key, value)
        with self._lock:
            self._waiting.append(mine)
            mine.lead = first = not self._serving
            self._serving = True
            if not mine.lead:
                mine.done.acquire()  # held until whoever answers it releases it
        if not mine.lead:
            mine.done.acquire()
        if mine.lead:  # an heir (handed the serving) has waited a round already: no linger
            self._serve_until(mine, linger=first)
        if mine.error is not None:
            raise mine.error
        return mine.answer  # type: ignore[return-value]

    def _serve_until(self, mine: _Ask[K, R], *, linger: bool) -> None:
        if linger and self._linger_s > 0 and len(self._waiting) < self._fill:
            time.sleep(self._linger_s)  # asks arriving meanwhile join this batch
        while not mine.answered:
            with self._lock:
                batch = self._take()
            try:
                answers = self._serve({a.key: a.value for a in batch})
                for a in batch:
                    a.answer = answers[a.key]
            except BaseException as exc:  # every ask of the batch learns why
                for a in batch:
                    a.error = exc
            for a in batch:
                a.answered = True
                if a is not mine:
                    a.done.release()
        with self._lock:  # the oldest waiting ask serves next, or nobody serves
            if self._waiting:
                heir = self._waiting[0]
                heir.lead = True
                heir.done.release()
            else:
                self._serving = False

    def _take(self) -> list[_Ask[K, R]]:
        batch: list[_Ask[K, R]] = []
        keys: set[K] = set()
        rest: list[_Ask[K, R]] = []
        for a in self._waiting:
            if len(batch) < self._max and a.key not in keys:
                batch.append(a)
                keys.add(a.key)
            else:
                rest.append(a)
        self._waiting = rest
        return batch


class Later(Generic[K]):
    """Requests nobody waits for, served together in the background.

    ``put(key, value)`` returns at once; a daemon thread hands what gathered to
    ``serve`` every ``every_s`` (at once when ``max_batch`` gathered) and logs what
    ``serve`` raises. ``flush()`` serves what is waiting now, in the caller's thread.
    """

    def __init__(
        self,
        serve: Callable[[dict[K, object]], object],
        *,
        name: str,
        every_s: float = 0.05,
        max_batch: int = 64,
    ) -> None:
        self._serve, self._name, self.every_s, self._max = serve, name, every_s, max_batch
        self._waiting: dict[K, object] = {}
        self._lock = threading.Lock()
        self._full = threading.Event()
        self._thread: threading.Thread | None = None

    def put(self, key: K, value: object) -> None:
        with self._lock:
            self._waiting[key] = value
            if self._thread is None:
                self._thread = threading.Thread(target=self._forever, name=self._name, daemon=True)
                self._thread.start()
            if len(self._waiting) >= self._max:
                self._full.set()

    def flush(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        if waiting:
            self._serve(waiting)

    def _forever(self) -> None:
        while True:
            self._full.wait(self.every_s)
            self._full.clear()
            try:
                self.flush()
            except Exception:  # the next round goes on; what failed is logged
                log.exception("%s: background requests not served", self._name)


class ScriptBatcher:
    """Calls of one Redis Lua script from many threads, sent together in one pipeline.

    ``call(keys, args)`` returns what the script returned for that call; calls made
    while a pipeline is in flight go in the next one (``Combiner``). A Redis error
    reaches every call of its pipeline. ``send(keys, args)`` is a call whose answer
    nobody waits for: a background thread sends what gathered every ``SEND_EVERY_S``
    (or at once when ``max_batch`` gathered) and logs a Redis error.
    """

    SEND_EVERY_S = 0.05

    def __init__(self, client: redis.Redis, script: str, *, max_batch: int = 64) -> None:
        self._client = client
        self._script = client.register_script(script)
        self._ids = itertools.count()
        self._combiner: Combiner[int, Any] = Combiner(self._run, max_batch=max_batch)
        self._later: Later[int] = Later(
            self._run,
            name="switchyard-script-sender",
            every_s=self.SEND_EVERY_S,
            max_batch=max_batch,
        )

    def call(self, keys: list[str], args: list[Any]) -> Any:
        return self._combiner.ask(next(self._ids), (keys, args))

    def send(self, keys: list[str], args: list[Any]) -> None:
        self._later.put(next(self._ids), (keys, args))

    def flush(self) -> None:
        """Send what ``send`` gathered now, in this thread."""
        self._later.flush()

    def send_now(self, calls: list[tuple[list[str], list[Any]]]) -> None:
        """Send ``calls`` (keys, args) in one pipeline now, in this thread; a Redis error
        raises here (for a caller that gathers its own calls in the background)."""
        self._run({next(self._ids): call for call in calls})

    def _run(self, calls: dict[int, object]) -> dict[int, Any]:
        # EVALSHA straight into the pipeline: redis-py's scripts in a pipeline ask
        # SCRIPT EXISTS first, a round trip each time; a Redis that lost the script
        # (restarted empty) answers NOSCRIPT, and it is loaded once and sent again.
        for loaded in (False, True):
            with self._client.pipeline(transaction=False) as pipe:
                for value in calls.values():
                    keys, args = cast(tuple[list[str], list[Any]], value)
                    pipe.evalsha(self._script.sha, len(keys), *keys, *args)
                try:
                    results = pipe.execute()
                except redis.exceptions.NoScriptError:
                    if loaded:
                        raise
                    self._client.script_load(self._script.script)
                    continue
            return dict(zip(calls, results, strict=True))
        raise AssertionError("unreachable")
