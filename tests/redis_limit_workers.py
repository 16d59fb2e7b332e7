"""What each worker process of the shared rate-limit drill runs (imported by spawned children).

`send` builds one manager (one deployment group limited to ``rpm``, whose model counts its
calls in a counter shared by every process: the upstream), waits at the barrier with the other
workers, sends ``count`` requests and puts what happened to them on the queue: once with the
limits shared through Redis, once per process. (A callable model rather than the fake server:
importing the OpenAI SDK in four processes at once takes longer than the drill itself.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier
from typing import Any

from reliable_llm import Deployment, LLMManager, LocalRateLimitError
from reliable_llm.backends import RedisState


def upstream(calls: Synchronized[int]) -> Callable[..., str]:
    """A model that counts its calls in ``calls``, shared by every process."""

    def model(prompt: str, **kwargs: Any) -> str:
        with calls.get_lock():
            calls.value += 1
        return "fine"

    return model


def _phase(
    manager: LLMManager, barrier: Barrier, count: int, model: str
) -> dict[str, int | list[str]]:
    barrier.wait(60)
    served = refused = 0
    errors: list[str] = []
    for _ in range(count):
        try:
            manager.chat("hi", model=model, timeout=2)
            served += 1
        except LocalRateLimitError:
            refused += 1
        except Exception as exc:  # reported to the test, which fails on any
            errors.append(repr(exc))
    return {"served": served, "refused": refused, "errors": errors[:3]}


def send(
    queue: Queue[Any],
    barrier: Barrier,
    calls: dict[str, Synchronized[int]],
    redis_url: str,
    namespace: str,
    rpm: int,
    count: int,
) -> None:
    """Send ``count`` requests to a group limited to ``rpm``, shared and then per process."""
    try:
        results: dict[str, Any] = {"pid": os.getpid()}
        for phase, state in (
            (
                "shared",
                RedisState(redis_url, namespace=namespace, timeout=0.5, connect_timeout=2.0),
            ),
            ("alone", None),
        ):
            manager = LLMManager(enable_caching=False, max_retries=0, shared_state=state)
            manager.register_model(phase, [Deployment(upstream(calls[phase]), rpm=rpm)])
            results[phase] = _phase(manager, barrier, count, phase)
        queue.put(results)
    except BaseException as exc:
        queue.put({"pid": os.getpid(), "crashed": repr(exc)})
        raise
