"""How many jobs (and messages) wait on each tier queue, priority sub-lists included.

kombu's Redis transport keeps one queue as several lists, one per priority step
(``PRIORITY_STEPS`` in ``orchestrator.queues.app``): step 0 is the list named after
the queue, and every other step is ``<queue>\\x06\\x16<step>``; each key also
carries the global key prefix. A list-length autoscaler that reads only
``<queue>`` sees interactive work and misses every batch job (priority 6), so
``GET /queues`` sums the lists here and KEDA's ``metrics-api`` trigger reads that.

A batch message carries up to ``batch_message_jobs`` jobs (``orchestrator.queues.app``)
and says how many in its ``switchyard_jobs`` header, so ``depth`` counts jobs:
the sub-lists batch messages can sit on are read through in Redis (one Lua
script, matching the header in each message), the others are only measured.
``messages`` is what Flower's Broker tab shows.

Messages a worker has already fetched (unacknowledged, running or prefetched)
are not counted: this is the backlog, what more workers would take.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis
from kombu.transport.redis import Channel
from pydantic import BaseModel

from orchestrator.core.schemas import Priority
from orchestrator.core.tiers import ALL_TIERS, Tier
from orchestrator.queues.app import JOBS_HEADER, PRIORITY_STEPS, PRIORITY_VALUE

SUBLIST_SEPARATOR: str = Channel.sep
# KEYS: sub-lists; ARGV[i] = '1' where batch messages may sit. Returns length, jobs per key.
COUNT_JOBS = f"""
local out = {{}}
for i, key in ipairs(KEYS) do
  local n = redis.call('LLEN', key)
  local jobs = n
  if n > 0 and ARGV[i] == '1' then
    jobs = 0
    for _, raw in ipairs(redis.call('LRANGE', key, 0, -1)) do
      jobs = jobs + (tonumber(string.match(raw, '"{JOBS_HEADER}": *(%d+)')) or 1)
    end
  end
  out[#out + 1] = n
  out[#out + 1] = jobs
end
return out
"""


class QueueDepth(BaseModel):
    """The backlog of one tier queue: the total, and per priority step."""

    depth: int  # jobs waiting
    by_priority: dict[str, int]  # jobs waiting per priority step
    messages: int = 0  # the messages holding them (a batch message holds several)


def sublist_keys(
    queue: str, *, prefix: str = "", steps: Sequence[int] = PRIORITY_STEPS
) -> dict[int, str]:
    """The Redis key of each priority step's list for ``queue``, as kombu names them."""
    return {
        step: prefix + (f"{queue}{SUBLIST_SEPARATOR}{step}" if step else queue) for step in steps
    }


def read_depths(
    client: redis.Redis,
    *,
    prefix: str = "",
    tiers: Iterable[Tier] = ALL_TIERS,
    count_jobs: bool = True,
) -> dict[str, QueueDepth]:
    """Jobs and messages on every sub-list of every tier queue, in one round trip.

    Without ``count_jobs`` only the lists' lengths are read (cheap at any backlog)
    and ``depth`` counts messages: enough to tell an empty queue.
    """
    keyed = [
        (tier, step, key)
        for tier in tiers
        for step, key in sublist_keys(tier.queue, prefix=prefix).items()
    ]
    batch = PRIORITY_VALUE[Priority.BATCH]
    chunked = ["1" if count_jobs and step >= batch else "0" for _, step, _ in keyed]
    counts: list[int] = client.register_script(COUNT_JOBS)(
        keys=[key for _, _, key in keyed], args=chunked
    )
    depths: dict[str, QueueDepth] = {}
    for i, (tier, step, _) in enumerate(keyed):
        messages, jobs = int(counts[2 * i]), int(counts[2 * i + 1])
        entry = depths.setdefault(tier.queue, QueueDepth(depth=0, by_priority={}))
        entry.by_priority[str(step)] = jobs
        entry.depth += jobs
        entry.messages += messages
    return depths
