"""Queue backlog per tier, for autoscalers (KEDA ``metrics-api``) and operators.

Unauthenticated on purpose, like ``/healthz``: it shows counts, never job data.
"""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from orchestrator.api.deps import StateDep
from orchestrator.queues.depth import QueueDepth, read_depths

router = APIRouter(tags=["queues"])


@router.get("/queues", response_model=dict[str, QueueDepth])
def queue_depths(state: StateDep) -> dict[str, QueueDepth] | JSONResponse:
    """Messages waiting on each tier queue, summed over its Redis priority sub-lists."""
    settings = state.settings
    client = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=2)
    try:
        return read_depths(client, prefix=settings.redis_key_prefix)
    except redis.RedisError as exc:
        message = f"broker unavailable: {type(exc).__name__}"
        return JSONResponse({"error": {"type": "unavailable", "message": message}}, 503)
    finally:
        client.close()
