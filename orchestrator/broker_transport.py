"""kombu's Redis transport with one reusable client per channel.

kombu's Redis channel builds a new ``redis.Redis`` object for every publish and
every acknowledgement (``Channel.conn_or_acquire``), and a redis-py client's
constructor copies its table of response callbacks each time. Under load that
was the largest single cost in a worker: 16% of the time it held the
interpreter in ``switchyard bench latency`` (py-spy ``--gil``), for task
events, acks and publishes. The client is only a handle on the channel's
connection pool and redis-py clients are safe to share between threads, so this
channel keeps one and hands it out again; a new pool (after a reconnect) gets a
new client. Everything else is kombu's transport unchanged.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

NAME = "orchestrator.broker_transport:Transport"  # Celery's ``broker_transport``


class Channel(kombu_redis.Channel):
    """A Redis channel whose synchronous client is made once per connection pool."""

    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = super()._create_client(asynchronous=False)  # type: ignore[no-untyped-call]
            self._shared_client = client
        return client


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with ``Channel`` above."""

    Channel = Channel
