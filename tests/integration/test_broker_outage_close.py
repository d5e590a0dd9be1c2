"""A worker's broker connection closes cleanly after a Redis outage, with messages
delivered and not yet acknowledged.

Celery's consumer, on losing the broker, first ``collect()``s the connection and then
``close()``s it. ``collect`` closes the channel while Redis is down: giving back the
unacknowledged messages fails with a connection error half way, and the transport then
forgets the connection's address. ``close`` closes the same channel again, and giving
the messages back then built a client from that address: ``AttributeError`` ('NoneType'
object has no attribute 'hostname'), which kombu does not treat as a connection error,
so the worker stopped with "Unrecoverable error" instead of reconnecting
(``switchyard bench chaos``: the survivor worker finished nothing after Redis came back).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import redis
from kombu import Connection

from loadtests._services import PrivateRedis
from orchestrator.queues import broker_transport


def test_close_after_collect_during_an_outage(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "redis")  # this test kills it
    server.start()
    try:
        queue = f"outage-{secrets.token_hex(4)}"
        with Connection(server.url, transport=broker_transport.Transport) as producer:
            producer.SimpleQueue(queue).put({"job_id": "job_1"})
        connection = Connection(server.url, transport=broker_transport.Transport)
        channel = connection.default_channel
        assert channel.basic_get(queue, no_ack=False) is not None  # delivered, unacked
        server.kill()
        connection.collect()  # as Celery's consumer does on losing the broker
        connection.close()
        # the frames of the crash: closing the channel drops its pools, then gives the
        # unacknowledged messages back through a client made from the forgotten address
        channel._disconnect_pools()
        with pytest.raises(redis.exceptions.ConnectionError):  # was AttributeError
            channel.qos.restore_unacked()
        ignored = broker_transport.Transport.connection_errors  # what kombu ignores on close
        assert issubclass(redis.exceptions.ConnectionError, ignored)
    finally:
        server.kill()
