"""`LLMManager`: the public face of the library (the seed API plus a chat-shaped one)."""

from __future__ import annotations

import functools
import logging
import random as _random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reliable_llm._breaker import BreakerState
from reliable_llm._cache import CacheBackend, InMemoryCache, cache_size
from reliable_llm._chatstream import AsyncChatStream, ChatStream
from reliable_llm._classify import ErrorClassifier
from reliable_llm._clock import Clock, SystemClock
from reliable_llm._deployments import (
    Deployment,
)
from reliable_llm._engine import Engine
from reliable_llm._errors import ConfigurationError
from reliable_llm._events import (
    BreakerTransition,
    Event,
    EventHook,
    check_hook,
)
from reliable_llm._metrics import MetricsCollector
from reliable_llm._plan import plan_call
from reliable_llm._policies import (
    BreakerPolicy,
    CachePolicy,
    HedgePolicy,
    RetryPolicy,
    TimeoutPolicy,
    check_policy,
)
from reliable_llm._provider import Provider
from reliable_llm._registration import Registrar
from reliable_llm._registry import ModelEntry, Registry
from reliable_llm._render import MetricsSnapshot, metrics_html, metrics_table
from reliable_llm._request import MessagesInput, check_flag, check_prompt
from reliable_llm._serving import Server
from reliable_llm._types import ChatResponse
from reliable_llm._validation import Validator

if TYPE_CHECKING:
    from reliable_llm.backends._redis import RedisState

__all__ = ["LLMManager"]

# The counters of `get_model_info` that a deployment group reports as its deployments' sums.
_SUMMED = (
    "attempts",
    "success_count",
    "failure_count",
    "cancelled_attempts",
    "retries",
    "requests_served",
    "breaker_opens",
)

logger = logging.getLogger("reliable_llm")


class LLMManager:
    """Serves LLM requests through a cache, a fallback chain, per-model breakers and retries.

    Example:
        >>> manager = LLMManager(max_retries=2)
        >>> manager.register_model("echo", lambda prompt, **kw: prompt.upper())
        >>> manager.generate("hello")
        'HELLO'

    Args:
        max_retries: Retries per model after its first attempt (the seed's parameter).
        enable_caching: Whether responses are cached by default.
        retry: Full retry policy (pass ``max_retries`` only here, or only above: two different
            values raise `ConfigurationError`).
        breaker: Default breaker policy for models registered without one.
        cache: Size and TTL of the default in-memory cache.
        timeouts: Total and per-attempt deadlines of a request.
        cache_backend: Where responses are cached (default: in memory, per ``cache``).
        clock: Time source and sleeper (tests pass ``reliable_llm.testing.FakeClock``).
        random: Source of jitter, a callable returning floats in [0, 1).
        hooks: Callables receiving every event (see ``reliable_llm.events``).
        shared_state: Breakers, cooldowns, deployments' rate limits, the cache (unless
            ``cache_backend`` is given) and single flight shared with other processes
            (`reliable_llm.backends.RedisState`).
        hedging: Send a request that is slow on one model to the next model too, and take
            the first answer (see `HedgePolicy`); None (the default) never hedges.

    Raises:
        ConfigurationError: A policy value is invalid or conflicting.
    """

    def __init__(
        self,
        max_retries: int = 3,
        enable_caching: bool = True,
        *,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        cache: CachePolicy | None = None,
        timeouts: TimeoutPolicy | None = None,
        cache_backend: CacheBackend | None = None,
        clock: Clock | None = None,
        random: Callable[[], float] | None = None,
        hooks: Iterable[EventHook] = (),
        shared_state: RedisState | None = None,
        hedging: HedgePolicy | None = None,
    ) -> None:
        retry = check_policy("retry", retry, RetryPolicy, "RetryPolicy(max_retries=3)")
        breaker = check_policy("breaker", breaker, BreakerPolicy, "BreakerPolicy()")
        cache = check_policy("cache", cache, CachePolicy, "CachePolicy(ttl=3600)")
        timeouts = check_policy("timeouts", timeouts, TimeoutPolicy, "TimeoutPolicy(total=30)")
        if retry is None:
            retry = RetryPolicy(max_retries=max_retries)
        elif max_retries not in (3, retry.max_retries):
            raise ConfigurationError(
                f"max_retries={max_retries} conflicts with retry.max_retries="
                f"{retry.max_retries}; pass only one of them"
            )
        self.retry_policy = retry
        self.breaker_policy = breaker or BreakerPolicy()
        self.cache_policy = cache or CachePolicy()
        self.timeouts = timeouts or TimeoutPolicy()
        check_flag("enable_caching", enable_caching)
        self.enable_caching = enable_caching
        self.clock: Clock = clock or SystemClock()
        if cache_backend is not None and not isinstance(cache_backend, CacheBackend):
            raise ConfigurationError(
                f"cache_backend must have get(key), set(key, value, ttl), clear() and "
                f"__len__() (see reliable_llm.CacheBackend), got {type(cache_backend).__name__}"
            )
        self.shared_state = _check_shared_state(shared_state)
        # `is None`, not `or`: an empty backend has len 0 and would count as false.
        if cache_backend is not None:
            self.cache: CacheBackend = cache_backend
        elif shared_state is not None:
            self.cache = shared_state.cache(InMemoryCache(self.cache_policy, self.clock))
        else:
            self.cache = InMemoryCache(self.cache_policy, self.clock)
        self.metrics = MetricsCollector()
        self._registrar = Registrar(self)
        hooks = tuple(hooks)
        for hook in hooks:
            check_hook(hook)
        self._hooks: tuple[EventHook, ...] = (self.metrics, *hooks)
        self.hedging = check_policy("hedging", hedging, HedgePolicy, "HedgePolicy(delay=2.0)")
        self._random = random or _random.random
        engine: Engine
        if hedging is None:
            engine = Engine(self.clock, self._random, self._emit)
        else:  # imported only when configured: it costs ~10 ms of `import reliable_llm`
            from reliable_llm._hedge import HedgingEngine

            engine = HedgingEngine(
                self.clock, self._random, self._emit, hedging, self.metrics.recent_latencies
            )
        self._server = Server(engine, self.cache, self.clock, self._emit)
        # Plans are built by `plan_call` (the one place); a partial keeps the call cheap.
        self._plan = functools.partial(plan_call, self)
        self._server.records = len(self._hooks) > 1
        if shared_state is not None:
            shared_state.attach(self._emit, self.clock)
            self._server.shared = shared_state.flight()
        self._lock = threading.Lock()
        self._registry = Registry()

    def _emit(self, event: Event) -> None:
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                logger.exception("event hook %r failed on %r", hook, event)

    def add_hook(self, hook: EventHook) -> None:
        """Call ``hook(event)`` for every event from now on.

        Hooks are called synchronously, never under a lock, in the thread or task serving the
        request; a hook that raises is logged and ignored.

        Raises:
            ConfigurationError: ``hook`` is not callable, or is an ``async def`` function
                (it would never run: wrap it to schedule the coroutine yourself).
        """
        check_hook(hook)
        with self._lock:
            self._hooks = (*self._hooks, hook)
            self._server.records = True

    def remove_hook(self, hook: EventHook) -> None:
        """Stop calling ``hook``."""
        with self._lock:
            self._hooks = tuple(h for h in self._hooks if h != hook)
            self._server.records = len(self._hooks) > 1

    def _on_breaker_change(self, model: str, old: BreakerState, new: BreakerState) -> None:
        log = logger.warning if new is BreakerState.OPEN else logger.info
        log("circuit breaker for model %r: %s -> %s", model, old.value, new.value)
        self._emit(BreakerTransition(model, old, new))

    def register_model(
        self,
        name: str,
        inference_fn: Provider
        | Callable[..., Any]
        | str
        | Deployment
        | Sequence[Provider | Callable[..., Any] | str | Deployment],
        metadata: Mapping[str, Any] | None = None,
        *,
        replace: bool = False,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        classify_error: ErrorClassifier | None = None,
        strategy: str | None = None,
        validators: Validator | Sequence[Validator] | None = None,
    ) -> None:
        """Register a model under ``name``; the first one registered becomes the active model.

        Args:
            name: The name requests use for this model.
            inference_fn: A `Provider`, a seed-style ``fn(prompt, **kwargs) -> str`` (sync or
                async) that may also return a `ChatResponse`, or a model string
                ``"<preset>:<model>"`` such as ``"openai:gpt-4o-mini"``. A list of them (or
                of `Deployment` objects, for weights and limits), or one `Deployment`, makes
                ``name`` a deployment group: several deployments of one model, each with its
                own breaker, limits and metrics (deployment ids ``"<name>[0]"``, ...).
            metadata: Free-form facts (context window, cost, ...) shown by `get_model_info`.
            replace: Allow replacing a model already registered under ``name``.
            retry: This model's retry policy (default: the manager's); for a group, each
                deployment's.
            breaker: This model's breaker policy (default: the manager's); for a group, each
                deployment's.
            classify_error: Maps this model's foreign exceptions to the error tree; by default
                they count as transient.
            strategy: How a group picks the deployment a request tries first: ``"weighted"``
                (default), ``"least_in_flight"``, ``"lowest_latency"`` or ``"lowest_usage"``.
            validators: Checks every answer of this model must pass, such as
                ``reliable_llm.validators.not_truncated()``; a rejected answer moves the
                request to the next model (see `reliable_llm.validators`).

        The provider is warmed here (`Provider.warm`: SDK import, client construction), so
        no request pays for that inside its deadline or on an event loop.

        Raises:
            ConfigurationError: Empty name, a duplicate without ``replace=True``, a model that
                is neither a Provider nor callable, a callable that cannot take a prompt, an
                empty group, a bad `Deployment` value, an unknown ``strategy``, ``strategy``
                for a single model, or a validator that is not a sync callable.
        """
        self._registrar.register(
            name,
            inference_fn,
            metadata,
            replace,
            retry,
            breaker,
            classify_error,
            strategy,
            validators,
        )

    def set_active_model(self, name: str) -> None:
        """Make ``name`` the first model every request tries.

        Raises:
            UnknownModelError: ``name`` is not registered.
        """
        self._registry.set_active(name)

    @property
    def active_model(self) -> str | None:
        """The model requests try first."""
        return self._registry.active

    @property
    def fallback_chain(self) -> tuple[str, ...]:
        """The models tried, in order, after the active one."""
        return self._registry.chain

    @property
    def route(self) -> tuple[str, ...]:
        """The models a request tries, in order: the active one, then the chain, each once."""
        return self._registry.route_names

    def set_fallback_chain(self, model_names: Sequence[str]) -> None:
        """Set the models tried, in order, when the active model fails (empty: none).

        Raises:
            ConfigurationError: An entry is empty, not a str, or repeated.
            UnknownModelError: An entry is not registered.
        """
        self._registry.set_chain(model_names)

    def list_models(self) -> list[str]:
        """Registered model names, in registration order."""
        return list(self._registry.models)

    def describe_model(self, model_name: str) -> Mapping[str, Any]:
        """What a model is, without statistics: cheap enough to call on every request.

        Returns a read-only mapping with ``name``, ``metadata`` (as registered),
        ``provider`` (the provider's secret-free description) and ``capabilities`` (the
        content parts it takes, `ModelCapabilities.to_dict`). Re-registering the model
        yields a new mapping, so a cache keyed on it by identity never goes stale.

        A deployment id (``"gpt-4o[0]"``) describes that deployment of a group.

        Raises:
            UnknownModelError: ``model_name`` is neither registered nor a deployment id.
        """
        return self._registry.entry_or_deployment(model_name).description

    def get_model_info(self, model_name: str) -> dict[str, Any]:
        """Metadata, breaker state and statistics of one model.

        Returns a dict with ``name``, ``metadata``, ``provider`` (secret-free description),
        ``capabilities`` (the content parts it takes, `ModelCapabilities.to_dict`),
        ``is_active``, ``breaker`` (``state``, ``failure_count``, ``failure_threshold``,
        ``recovery_timeout``, ``retry_in``, ``open_time``, ``ejections``, ``window_calls``,
        ``failure_rate``, ``slow_call_rate``, ``panic_trials``: see
        `BreakerPolicy`), ``retry_budget`` (None, or ``percent``, ``window`` seconds,
        ``requests``, ``retries`` and ``allowed`` retries in the window), and the counters
        ``attempts``,
        ``success_count``, ``failure_count``, ``cancelled_attempts``, ``retries``,
        ``requests_served``,
        ``avg_latency``, ``p95_latency``, ``latency``, ``last_used``, ``last_error_type``,
        ``breaker_opens`` and ``tokens``.

        For a deployment group: ``strategy``, and ``deployments``, each deployment's own
        dict by id (the keys above plus ``group``, ``weight``, ``latency_average`` (seconds,
        kept under the ``lowest_latency`` strategy, else None) and, when it has limits (or
        its strategy counts them), ``rate_limits`` (``rpm``, ``tpm`` and the ``requests`` and
        ``tokens`` of the last minute) and ``bulkhead`` (``max_concurrent_calls``,
        ``in_flight``, ``peak``)); its counters are the sums of its deployments'. A
        deployment id (``"gpt-4o[0]"``) gives that deployment's dict.

        Raises:
            UnknownModelError: ``model_name`` is neither registered nor a deployment id.
        """
        registry = self._registry
        entry = registry.entry_or_deployment(model_name)
        group = entry.group
        if group is None:
            return self._entry_info(entry)
        deployments = {m.name: self._entry_info(m) for m in group.members}
        info: dict[str, Any] = {
            "name": model_name,
            "metadata": dict(entry.metadata),
            "provider": entry.provider.describe(),
            "is_active": model_name == registry.active,
            "strategy": group.strategy,
            "breaker": {
                "states": {n: d["breaker"]["state"] for n, d in deployments.items()},
            },
        }
        for key in _SUMMED:
            info[key] = sum(d[key] for d in deployments.values())
        info["tokens"] = {
            kind: sum(d["tokens"][kind] for d in deployments.values())
            for kind in ("input", "output", "total")
        }
        info["deployments"] = deployments
        return info

    def _entry_info(self, entry: ModelEntry) -> dict[str, Any]:
        """`get_model_info` of a model or of one deployment."""
        stats = self.metrics.model_stats(entry.name)
        stats.pop("breaker_state")
        info: dict[str, Any] = {
            "name": entry.name,
            "metadata": dict(entry.metadata),
            "provider": entry.provider.describe(),
            "capabilities": entry.capabilities.to_dict(),
            "is_active": entry.route_name == self._registry.active,
            "breaker": entry.breaker.snapshot(),
            "retry_budget": None if entry.budget is None else entry.budget.snapshot(),
            **stats,
        }
        state = getattr(entry.provider, "state", None)
        if entry.member_of is not None:
            info["group"] = entry.route_name
            members = entry.member_of.members
            info.update(entry.member_of.states[members.index(entry)].snapshot())
        elif state is not None:  # pragma: no cover - only deployments are gated
            info.update(state.snapshot())
        return info

    def get_metrics(self) -> MetricsSnapshot:
        """Overall metrics as a plain dict.

        Keys: ``total_requests``, ``successful_requests``, ``failed_requests``,
        ``cancelled_requests`` (cancelled tasks, abandoned streams, ``KeyboardInterrupt``),
        ``success_rate`` (answered / (answered + failed): cancelled requests have no outcome
        and are left out, so clients that go away do not look like an outage), ``cache``
        (``hits``, ``misses``, ``hit_rate``, ``size``, ``errors``:
        backend failures and unreadable entries, each served as a miss), ``retries``,
        ``fallbacks`` (``total``, ``by_pair`` as ``"from->to"``, ``by_reason``),
        ``breaker_transitions``, ``latency`` (``avg``, ``p50``, ``p95``, ``p99`` seconds of
        uncached requests), ``tokens`` (``input``, ``output``, ``total``), ``models`` (per model,
        and per deployment of a group by its id: the counters of `get_model_info`,
        ``breaker_state``, ``breaker_ejections`` and ``breaker_failure_rate``, a percentage or
        None without a sliding window), ``deployment_groups`` (each group's deployment ids),
        ``active_model`` and ``fallback_chain``. Latency percentiles cover the most recent
        2,048 requests.
        """
        snapshot = MetricsSnapshot(self.metrics.snapshot(cache_size(self.cache)))
        registry = self._registry
        models = snapshot["models"]
        for entry in registry.serving():  # each model, and each deployment of a group
            model = models.get(entry.name)
            if model is None:
                continue
            breaker = entry.breaker
            model["breaker_state"] = breaker.state.value
            model["breaker_ejections"] = breaker.ejections
            model["breaker_failure_rate"] = breaker.rates()[1]
        snapshot["deployment_groups"] = {
            name: [m.name for m in entry.group.members]
            for name, entry in list(registry.models.items())
            if entry.group is not None
        }
        snapshot["active_model"] = registry.active
        snapshot["fallback_chain"] = list(registry.chain)
        return snapshot

    def reset_circuit_breaker(self, model_name: str) -> None:
        """Close ``model_name``'s breaker and forget its failure count (for a deployment
        group, every deployment's; a deployment id resets that deployment's).

        Raises:
            UnknownModelError: ``model_name`` is neither registered nor a deployment id.
        """
        entry = self._registry.entry_or_deployment(model_name)
        if entry.group is None:
            entry.breaker.reset()
            return
        for member in entry.group.members:
            member.breaker.reset()

    def clear_cache(self) -> None:
        """Remove every cached response."""
        self.cache.clear()

    def close(self) -> None:
        """Close the connections of every registered model's provider (those it created;
        for a deployment group, each deployment's).

        A provider keeps working after this: its next call opens new connections. Also
        ``with LLMManager() as manager: ...``.
        """
        for entry in list(self._registry.models.values()):
            close = getattr(entry.provider, "close", None)
            if callable(close):
                close()

    async def aclose(self) -> None:
        """Async twin of `close`, which also closes the running loop's async clients.

        Also ``async with LLMManager() as manager: ...``.
        """
        for entry in list(self._registry.models.values()):
            aclose = getattr(entry.provider, "aclose", None)
            if callable(aclose):
                await aclose()
            else:
                close = getattr(entry.provider, "close", None)
                if callable(close):
                    close()
        if self.shared_state is not None:
            await self.shared_state.aclose()

    def __enter__(self) -> LLMManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> LLMManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def chat(
        self,
        messages: MessagesInput,
        *,
        model: str | None = None,
        fallback_chain: Sequence[str] | None = None,
        use_cache: bool | None = None,
        cache_ttl: float | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> ChatResponse:
        """Answer a conversation; returns the full response.

        Args:
            messages: A prompt string, a `Message`, or a list of `Message` / OpenAI-style dicts.
            model: Try this model first instead of the active one.
            fallback_chain: Use this chain instead of the configured one for this call.
            use_cache: False skips the cache for this call (``enable_caching=False`` on the
                manager turns caching off for every call).
            cache_ttl: Seconds this call's answer stays cached.
            timeout: Seconds the whole request may take, retries and fallbacks included.
            **params: Generation parameters (temperature, max_tokens, top_p, stop, seed, tools,
                tool_choice, response_format); others are passed to the provider unchanged,
                except ``validators=``: checks this request's answer must pass (a validator or
                a list, see `reliable_llm.validators`), run after the answering model's own;
                a rejected answer moves to the next model and is never cached.

        Raises:
            AllModelsFailedError: No model answered; ``failures`` says why for each one.
            ConfigurationError: The request or an override is invalid, or a validator raised
                something other than `InvalidResponseError`.
        """
        plan = self._plan(messages, params, model, fallback_chain, use_cache, cache_ttl, timeout)
        return self._server.serve(plan)

    async def achat(
        self,
        messages: MessagesInput,
        *,
        model: str | None = None,
        fallback_chain: Sequence[str] | None = None,
        use_cache: bool | None = None,
        cache_ttl: float | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> ChatResponse:
        """Async twin of `chat`; never blocks the event loop."""
        plan = self._plan(messages, params, model, fallback_chain, use_cache, cache_ttl, timeout)
        return await self._server.aserve(plan)

    def generate(self, prompt: str, use_cache: bool = True, **kwargs: Any) -> str:
        """Answer a prompt with text (the seed API): ``chat(prompt, ...).text``.

        Keyword arguments are those of `chat`.

        Raises:
            AllModelsFailedError: No model answered; ``failures`` says why for each one.
            ConfigurationError: The prompt or a parameter is invalid.
        """
        if type(prompt) is not str:
            check_prompt(prompt)  # raises; chat() would take a list as a conversation
        return self.chat(prompt, use_cache=use_cache, **kwargs).text

    async def agenerate(self, prompt: str, use_cache: bool = True, **kwargs: Any) -> str:
        """Async twin of `generate`."""
        if type(prompt) is not str:
            check_prompt(prompt)
        return (await self.achat(prompt, use_cache=use_cache, **kwargs)).text

    def stream(
        self,
        messages: MessagesInput,
        *,
        model: str | None = None,
        fallback_chain: Sequence[str] | None = None,
        use_cache: bool | None = None,
        cache_ttl: float | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> ChatStream:
        """Stream the answer chunk by chunk; arguments are those of `chat`.

        Returns a `ChatStream`: iterate it for chunks; once exhausted its ``response`` is the
        whole `ChatResponse`. Until the first chunk reaches the caller, failures are retried
        and fall back as for `chat` (the first chunk must come within the per-attempt
        timeout). After that, each chunk must come within ``TimeoutPolicy.stream_idle`` and
        the request's deadline, and a failure raises `StreamInterruptedError` with the partial
        text. A completed stream is cached; a cached answer is replayed as a stream.

        Raises:
            AllModelsFailedError: No model started streaming (raised while iterating).
            StreamInterruptedError: The stream broke after text was yielded, or a validator
                rejected the complete answer after its chunks were yielded.
            ConfigurationError: The request or an override is invalid (raised here).
        """
        plan = self._plan(messages, params, model, fallback_chain, use_cache, cache_ttl, timeout)
        server = self._server
        return ChatStream(lambda state: server.stream(plan, state))

    def astream(
        self,
        messages: MessagesInput,
        *,
        model: str | None = None,
        fallback_chain: Sequence[str] | None = None,
        use_cache: bool | None = None,
        cache_ttl: float | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> AsyncChatStream:
        """Async twin of `stream`: ``async for chunk in manager.astream(...)``; returns an
        `AsyncChatStream` whose ``response`` is the whole answer once exhausted."""
        plan = self._plan(messages, params, model, fallback_chain, use_cache, cache_ttl, timeout)
        server = self._server
        return AsyncChatStream(lambda state: server.astream(plan, state))

    def __str__(self) -> str:
        return metrics_table(self.get_metrics())

    def _repr_html_(self) -> str:
        return metrics_html(self.get_metrics())

    def __repr__(self) -> str:
        registry = self._registry
        states = ", ".join(f"{e.name}:{e.breaker.state.value}" for e in registry.serving())
        return (
            f"LLMManager(active={registry.active!r}, fallback_chain={list(registry.chain)}, "
            f"models=[{states}], caching={self.enable_caching})"
        )


def _check_shared_state(shared_state: object) -> RedisState | None:
    """``shared_state`` if it is one, or raise `ConfigurationError` saying what to pass."""
    if shared_state is None:
        return None
    from reliable_llm.backends._redis import RedisState  # deferred: an optional backend

    if not isinstance(shared_state, RedisState):
        raise ConfigurationError(
            "shared_state must be a reliable_llm.backends.RedisState, e.g. "
            "RedisState('redis://127.0.0.1:6379/0'), got "
            f"{type(shared_state).__name__}"
        )
    return shared_state
