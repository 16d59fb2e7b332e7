"""What each worker process of the multi-process Redis tests runs (imported by spawned children).

`serve` is a worker's loop: it receives ``(function name, keyword arguments)`` on a pipe, runs
the function of this module and sends back its result (or the exception's text). Managers
live on between commands, one per namespace, like a real worker's.
"""

from __future__ import annotations

import os
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from reliable_llm import BreakerPolicy, LLMManager, RetryPolicy, TimeoutPolicy
from reliable_llm._breaker import Admission, BreakerState, Trial
from reliable_llm._clock import SystemClock
from reliable_llm.backends import RedisState, SQLiteCache
from reliable_llm.events import SharedStateDegraded, SharedStateRecovered
from reliable_llm.providers import OpenAIProvider

_MANAGERS: dict[str, tuple[LLMManager, list[Any]]] = {}
_PROVIDERS: dict[tuple[str, str], OpenAIProvider] = {}


def serve(conn: Connection) -> None:
    """Run numbered commands from ``conn`` until it sends None; answer with their number."""
    while True:
        command = conn.recv()
        if command is None:
            return
        number, name, kwargs = command
        try:
            conn.send((number, "ok", globals()[name](**kwargs)))
        except BaseException:
            conn.send((number, "error", traceback.format_exc()))


def warm(base_url: str) -> int:
    """Build (and warm) the providers every test uses once, before any timed phase."""
    for name in ("primary", "backup"):
        provider(name, base_url).warm()
    RedisState("redis://127.0.0.1:9/0")  # imports redis-py (over a second on a busy host)
    return os.getpid()


def provider(name: str, base_url: str) -> OpenAIProvider:
    """This process's provider of ``name`` at ``base_url`` (its SDK clients built once)."""
    key = (name, base_url)
    if key not in _PROVIDERS:
        _PROVIDERS[key] = OpenAIProvider(name, base_url=base_url, api_key="sk-test")
    return _PROVIDERS[key]


def _wait(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def manager(
    namespace: str,
    redis_url: str | None,
    base_url: str,
    threshold: int = 5,
    recovery: float = 30.0,
    sqlite: str | None = None,
    sqlite_max_size: int = 1000,
) -> tuple[LLMManager, list[Any]]:
    """This process's manager for ``namespace``: primary then backup on the fake server;
    shared state on ``redis_url`` (a generous timeout: a loaded host must not fake an
    outage), the cache in the SQLite file ``sqlite`` when given."""
    if namespace in _MANAGERS:
        return _MANAGERS[namespace]
    events: list[Any] = []
    shared = None if redis_url is None else RedisState(redis_url, namespace=namespace, timeout=0.25)
    cache = None if sqlite is None else SQLiteCache(sqlite, max_size=sqlite_max_size)
    built = LLMManager(
        retry=RetryPolicy(max_retries=0),
        breaker=BreakerPolicy(failure_threshold=threshold, recovery_timeout=recovery),
        timeouts=TimeoutPolicy(total=10.0, per_attempt=2.0),
        hooks=[events.append],
        shared_state=shared,
        cache_backend=cache,
    )
    for name in ("primary", "backup"):
        built.register_model(name, provider(name, base_url))
    built.set_fallback_chain(["backup"])
    _MANAGERS[namespace] = (built, events)
    return built, events


def requests(
    namespace: str,
    redis_url: str | None,
    base_url: str,
    count: int,
    start_at: float = 0.0,
    pause: float = 0.0,
    for_seconds: float | None = None,
    prompt: str = "q",
    prompts: list[str] | None = None,
    own_prompts: int = 0,
    use_cache: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Send ``count`` requests (or keep sending for ``for_seconds``, or send each of
    ``prompts`` once, or ``own_prompts`` prompts no other process sends): what happened."""
    built, events = manager(namespace, redis_url, base_url, **options)
    _wait(start_at)
    if own_prompts:
        prompts = [f"process {os.getpid()}, prompt {k}" for k in range(own_prompts)]
    if prompts is not None:
        count = len(prompts)
    answered_by: dict[str, int] = {}
    cached = failed = primary_calls = 0
    errors: list[str] = []
    stop = None if for_seconds is None else time.monotonic() + for_seconds
    number = 0
    while (number < count) if stop is None else (time.monotonic() < stop):
        number += 1
        if prompts is not None:
            text = prompts[number - 1]
        else:
            text = f"{prompt}-{number % 5}" if stop is not None else prompt
        try:
            response = built.chat(text, use_cache=use_cache)
        except Exception as exc:
            failed += 1
            errors.append(repr(exc))
        else:
            answered_by[response.model] = answered_by.get(response.model, 0) + 1
            cached += response.cached
            primary_calls += sum(a.model == "primary" for a in response.attempts)
        if pause:
            time.sleep(pause)
    return {
        "answered_by": answered_by,
        "cached": cached,
        "failed": failed,
        "errors": errors[:3],
        "primary_calls": primary_calls,
        "degraded": sum(isinstance(e, SharedStateDegraded) for e in events),
        "recovered": sum(isinstance(e, SharedStateRecovered) for e in events),
        "available": None if built.shared_state is None else built.shared_state.available,
    }


def hammer(
    namespace: str, redis_url: str, start_at: float, seconds: float, healthy_at: float
) -> dict[str, Any]:
    """Drive one model's shared breaker as fast as possible; the model is dead until
    ``healthy_at`` (wall clock). Returns the generations of the trials this process took and
    how many ordinary (closed-state) admissions it had before ``healthy_at``."""
    policy = BreakerPolicy(failure_threshold=3, recovery_timeout=0.1)
    breaker = RedisState(redis_url, namespace=namespace, timeout=0.25).breaker(
        "m", policy, SystemClock(), None
    )
    _wait(start_at)
    stop = time.monotonic() + seconds
    trials: list[int] = []
    calls = early = 0
    while time.monotonic() < stop:
        ticket = breaker.admit(0.5)
        if ticket is Admission.REJECTED:
            time.sleep(0.001)
            continue
        calls += 1
        if isinstance(ticket, Trial):
            assert ticket.shared is not None
            trials.append(int(ticket.shared.rsplit("@", 1)[1]))
        elif time.time() < healthy_at:
            early += 1  # admitted while closed, before the model recovered
        time.sleep(0.002)  # the call
        if time.time() < healthy_at:
            breaker.record_failure(ticket)
        else:
            breaker.record_success(ticket)
    ticket = breaker.admit(0.5)
    closed = ticket is Admission.ALLOWED and breaker.state is BreakerState.CLOSED
    return {"trials": trials, "calls": calls, "early": early, "closed": closed}
