"""How many messages wait on each tier queue, priority sub-lists included.

kombu's Redis transport keeps one queue as several lists, one per priority step
(``PRIORITY_STEPS`` in ``orchestrator.queues``): step 0 is the list named after
the queue, and every other step is ``<queue>\\x06\\x16<step>``; each key also
carries the global key prefix. A list-length autoscaler that reads only
``<queue>`` sees interactive work and misses every batch job (priority 6), so
``GET /queues`` sums the lists here and KEDA's ``metrics-api`` trigger reads that.

Messages a worker has already fetched (unacknowledged, running or prefetched)
are not counted: this is the backlog, what more workers would take.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis
from kombu.transport.redis import Channel
from pydantic import BaseModel

from orchestrator.queues import PRIORITY_STEPS
from orchestrator.tiers import ALL_TIERS, Tier

SUBLIST_SEPARATOR: str = Channel.sep


class QueueDepth(BaseModel):
    """The backlog of one tier queue: the total, and per priority step."""

    depth: int
    by_priority: dict[str, int]


def sublist_keys(
    queue: str, *, prefix: str = "", steps: Sequence[int] = PRIORITY_STEPS
) -> dict[int, str]:
    """The Redis key of each priority step's list for ``queue``, as kombu names them."""
    return {
        step: prefix + (f"{queue}{SUBLIST_SEPARATOR}{step}" if step else queue) for step in steps
    }


def read_depths(
    client: redis.Redis, *, prefix: str = "", tiers: Iterable[Tier] = ALL_TIERS
) -> dict[str, QueueDepth]:
    """LLEN every sub-list of every tier queue in one round trip."""
    keyed = [
        (tier, step, key)
        for tier in tiers
        for step, key in sublist_keys(tier.queue, prefix=prefix).items()
    ]
    with client.pipeline(transaction=False) as pipe:
        for _, _, key in keyed:
            pipe.llen(key)
        lengths: list[int] = pipe.execute()
    depths: dict[str, QueueDepth] = {}
    for (tier, step, _), length in zip(keyed, lengths, strict=True):
        entry = depths.setdefault(tier.queue, QueueDepth(depth=0, by_priority={}))
        entry.by_priority[str(step)] = int(length)
        entry.depth += int(length)
    return depths
