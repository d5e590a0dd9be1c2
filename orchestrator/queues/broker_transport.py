"""kombu's Redis transport with one reusable client per channel.

kombu's Redis channel builds a new ``redis.Redis`` object for every publish and
every acknowledgement (``Channel.conn_or_acquire``), and a redis-py client's
constructor copies its table of response callbacks each time. Under load that
was the largest single cost in a worker's hold on the interpreter in
``switchyard bench latency`` (py-spy ``--gil``; BENCHMARKS.md), for task
events, acks and publishes. The client is only a handle on the channel's
connection pool and redis-py clients are safe to share between threads, so this
channel keeps one and hands it out again; a new pool (after a reconnect) gets a
new client. A channel whose connection Celery has collected (a broker outage)
answers a connection error, not kombu's ``AttributeError``, when a client is wanted.

The transport option ``consume_priority_steps`` (a worker's lane) narrows the
priority steps a channel fetches from: ``[0]`` fetches only the top step's list,
the interactive messages (``orchestrator.queues.app``). Publishing and giving
messages back still use every step.

``collected()``: inside it, a producer's ``batch()`` on this transport keeps the
Redis commands kombu would send (an ``LPUSH`` of each message, as kombu's own
publish batch gathers them) instead of sending them, so the API's event loop can
send them with the asyncio client (``orchestrator.admission.loop_writes``): the
message is kombu's and Celery's own, byte for byte. Everything else is kombu's
transport unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

NAME = "orchestrator.queues.broker_transport:Transport"  # Celery's ``broker_transport``

Command = tuple[str, tuple[Any, ...]]  # a Redis command's name and arguments
_COLLECTING: ContextVar[list[Command] | None] = ContextVar("switchyard_collecting", default=None)


@contextmanager
def collected() -> Iterator[list[Command]]:
    """Publishing through a producer's ``batch()`` in this block sends nothing: the
    Redis commands it would send are appended to the list yielded, in order."""
    commands: list[Command] = []
    token = _COLLECTING.set(commands)
    try:
        yield commands
    finally:
        _COLLECTING.reset(token)


class _Collected(kombu_redis.GlobalKeyPrefixMixin):
    """A publish batch (kombu's ``PublishBatch`` interface) that keeps its commands, their
    keys under the transport's ``global_keyprefix`` as kombu's client would send them."""

    def __init__(self, channel: Any, commands: list[Command]) -> None:
        self.channel = channel
        self.commands = commands
        self.global_keyprefix = channel.global_keyprefix or ""

    def publish(self, message: Any, **kwargs: Any) -> Any:
        return self.channel.basic_publish(message, _publish_batch=self, **kwargs)

    def add(self, name: str, *args: Any) -> None:  # kombu's ``_put`` hands each command here
        if self.global_keyprefix:
            args = tuple(self._prefix_args([name.upper(), *args])[1:])  # type: ignore[no-untyped-call]
        self.commands.append((name, args))

    def flush(self) -> None:
        pass

    def discard(self) -> None:
        self.commands.clear()

    def close(self) -> None:
        pass


class Channel(kombu_redis.Channel):
    """A Redis channel whose synchronous client is made once per connection pool."""

    _shared_client: Any = None
    consume_priority_steps: list[int] | None = None  # None: fetch from every step
    from_transport_options = (  # type: ignore[assignment]
        *kombu_redis.Channel.from_transport_options,
        "consume_priority_steps",
    )

    def _create_client(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            # The connection was collected (Celery's consumer does so on losing the
            # broker, then closes it; closing gives back unacknowledged messages). A
            # new pool would be built from the forgotten address and raise
            # AttributeError, which stopped the worker instead of reconnecting; a
            # connection error is what kombu ignores while closing.
            raise redis.exceptions.ConnectionError("the broker connection was closed")
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = super()._create_client(asynchronous=False)  # type: ignore[no-untyped-call]
            self._shared_client = client
        return client

    @property
    def supports_batch_publish(self) -> bool:
        return _COLLECTING.get() is not None or bool(super().supports_batch_publish)

    def create_publish_batch(self, max_size: int) -> Any:
        """kombu's publish batch, or inside ``collected()`` one that only keeps commands."""
        commands = _COLLECTING.get()
        if commands is None:
            return super().create_publish_batch(max_size)  # type: ignore[no-untyped-call]
        return _Collected(self, commands)

    def _brpop_start(self, timeout: Any = None) -> None:
        """kombu's blocking fetch (``BRPOP``), on the steps this channel consumes."""
        with self._consuming_steps():
            super()._brpop_start(timeout)  # type: ignore[no-untyped-call]

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        """kombu's one-message fetch (``basic_get``), on the steps this channel consumes."""
        with self._consuming_steps():
            return super()._get(queue)  # type: ignore[no-untyped-call]

    @contextmanager
    def _consuming_steps(self) -> Iterator[None]:
        """kombu's fetches walk ``priority_steps``: for their duration it is the lane's.

        The consumer's channel fetches on the worker's event loop only; it does not
        publish, and a step listed keeps its own list name (``_q_for_pri``).
        """
        steps = self.consume_priority_steps
        if steps is None:
            yield
            return
        every = self.priority_steps
        self.priority_steps = steps
        try:
            yield
        finally:
            self.priority_steps = every


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with ``Channel`` above."""

    Channel = Channel
