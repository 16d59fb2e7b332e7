"""`ReliableChatModel`: a LangChain chat model served by a reliable-llm `LLMManager`."""

from __future__ import annotations

import inspect
import operator
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import ConfigDict, Field

from langchain_reliable_llm._convert import from_langchain_messages, to_ai_message
from langchain_reliable_llm._errors import to_langchain_error
from langchain_reliable_llm._manager_setup import (
    OWN_MANAGER_OPTIONS,
    Core,
    build_core,
    check_option_names,
)
from langchain_reliable_llm._metadata import trace_failure, trace_response
from langchain_reliable_llm._stream import atranslate, translate
from langchain_reliable_llm._structured import StructuredMethod, structured_output
from langchain_reliable_llm._tools import ToolLike, format_tools, normalize_tools, tool_choice_for
from reliable_llm import (
    AllModelsFailedError,
    BreakerPolicy,
    CachePolicy,
    ChatResponse,
    LLMManager,
    Message,
    RetryPolicy,
    StreamInterruptedError,
    TimeoutPolicy,
)

__all__ = ["ReliableChatModel"]

_SAMPLING = ("temperature", "max_tokens", "top_p", "seed")
_CALL_DEFAULTS = ("timeout", "use_cache", "cache_ttl")


class ReliableChatModel(BaseChatModel):
    """A LangChain chat model with circuit breakers, retries, fallbacks, caching and metrics.

    Build it around an existing manager, whose breakers, cache and metrics are then shared by
    every chain that uses it::

        model = ReliableChatModel(manager=manager, temperature=0)

    or from plain parameters, e.g. in configuration::

        model = ReliableChatModel(
            models={"primary": "openai:gpt-4o-mini", "backup": ChatAnthropic(...)},
            max_retries=2,
        )

    With ``models=`` the first model is tried first and the others follow in order
    (``model=`` / ``fallbacks=`` change that); LangChain chat models are wrapped in
    `LangChainChatProvider`, ``"<preset>:<model>"`` strings name a preset provider.
    `llama_index.llms.reliable.ReliableLLM` takes the same options with the same meanings.

    Each call is one LangChain run; the response's ``response_metadata`` names the model that
    answered (``model`` and LangChain's ``model_name``), its ``provider`` and
    ``provider_model``, the models given up before it (``fallback_from``, ``fallbacks``),
    every upstream call (``attempts``), whether the answer was ``cached``, and the
    ``finish_reason``; the last chunk of a stream carries the same keys.
    Per call, ``model=`` picks the first model to try, ``fallbacks=`` the chain after it,
    ``use_cache=`` / ``cache_ttl=`` / ``timeout=`` override the defaults.

    Failures raise `ReliableChatModelError` (a `reliable_llm.AllModelsFailedError` that is
    also a `langchain_core.exceptions.ModelError`) or one of its subclasses.
    """

    manager: LLMManager | None = Field(default=None, exclude=True)
    """The manager serving requests; built from ``models`` when not given."""
    models: dict[str, Any] | None = Field(default=None, exclude=True)
    """Models for a manager of this model's own: providers, ``fn(prompt, **kw)`` callables,
    ``"<preset>:<model>"`` strings or LangChain chat models (wrapped automatically)."""
    model: str | None = None
    """The registered model tried first (default: the manager's active model; with
    ``models=``, the first one)."""
    fallbacks: list[str] | None = None
    """Models tried in order after ``model`` (default: the manager's fallback chain; with
    ``models=``, the other models in order)."""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    timeout: float | None = None
    """Seconds a whole call may take, retries and fallbacks included."""
    use_cache: bool | None = None
    """Whether calls use reliable-llm's response cache (default: the manager's setting)."""
    cache_ttl: float | None = None
    """Seconds an answer stays in reliable-llm's cache (default: the manager's policy)."""
    streaming: bool = False
    """Stream by default on invoke (LangChain's standard flag)."""
    # Options of a manager built from models= (see OWN_MANAGER_OPTIONS).
    max_retries: int | None = None
    """Retries per model of this model's own manager (default 3)."""
    enable_caching: bool | None = None
    """Whether this model's own manager caches responses (default True)."""
    retry: RetryPolicy | None = Field(default=None, exclude=True)
    """Full retry policy of this model's own manager."""
    breaker: BreakerPolicy | None = Field(default=None, exclude=True)
    """Breaker policy of this model's own manager."""
    failure_threshold: int | None = None
    """Consecutive failures that open a breaker of this model's own manager (default 5)."""
    recovery_timeout: float | None = None
    """Seconds a breaker of this model's own manager stays open (default 60)."""
    cache_policy: CachePolicy | None = Field(default=None, exclude=True)
    """Size and TTL of this model's own manager's cache (``cache`` is LangChain's own)."""
    timeouts: TimeoutPolicy | None = Field(default=None, exclude=True)
    """Total and per-attempt deadlines of this model's own manager."""
    clock: Any = Field(default=None, exclude=True)
    """Time source of this model's own manager (tests pass `reliable_llm.testing.FakeClock`)."""
    model_metadata: dict[str, dict[str, Any]] | None = Field(default=None, exclude=True)
    """Metadata per model name for this model's own manager (``context_window``, ...)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    # The manager and caches live in the instance __dict__ under `_core`, not in pydantic
    # private attributes: pydantic resolves those through __getattr__ on every access, which
    # showed in the per-call overhead. Underscore keys are not fields, so they are never dumped.
    if TYPE_CHECKING:
        _core: Core

    def __init__(self, **kwargs: Any) -> None:
        """Build the model; see the class docstring for the options.

        Raises:
            ConfigurationError: Neither or both of ``manager`` and ``models``, own-manager
                options with a shared manager, or an invalid model or option.
            UnknownModelError: ``model`` or a fallback is not registered.
            pydantic.ValidationError: A field of the wrong type.
        """
        check_option_names("ReliableChatModel", kwargs, type(self).model_fields)
        super().__init__(**kwargs)
        # Set up here rather than in a validator, so mistakes raise our own error types
        # (as in the LlamaIndex adapter) instead of pydantic's ValidationError.
        options = {n: getattr(self, n) for n in OWN_MANAGER_OPTIONS}
        core = build_core(
            self.manager,
            self.models,
            model=self.model,
            fallbacks=self.fallbacks,
            options={k: v for k, v in options.items() if v is not None},
        )
        self.manager = core.manager
        self.__dict__["_core"] = core

    def _per_call(self) -> bool:
        """Whether calls name their route rather than use the manager's precomputed one."""
        return self._core.per_call(self.model, self.fallbacks)

    @property
    def llm_manager(self) -> LLMManager:
        """The manager serving this model: its metrics, breakers and cache."""
        return self.manager  # type: ignore[return-value]  # set by __init__

    # -- LangChain identity ------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "reliable-llm"

    def _route(
        self, model: str | None = None, fallbacks: Sequence[str] | None = None
    ) -> tuple[str, ...]:
        manager = self.llm_manager
        if model is None and fallbacks is None and not self._per_call():
            return manager.route  # the manager's own route, precomputed
        first = model or self.model or manager.active_model
        chain = fallbacks if fallbacks is not None else self.fallbacks
        if chain is None:
            chain = manager.fallback_chain
        route = [first] if first else []
        route.extend(n for n in chain if n not in route)
        return tuple(route)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # LangChain reads these on every call (run metadata, its cache key): they are built
        # once per route, registration and sampling settings, then reused. The manager's
        # route tuple is replaced whenever a model is (re-)registered or the route changes.
        route = self._route()
        stop = self.stop
        settings = (
            self.temperature,
            self.max_tokens,
            self.top_p,
            self.seed,
            None if stop is None else tuple(stop),
        )
        core = self._core
        cached = core.identity
        if cached is not None and cached[0] is route and cached[1] == settings:
            return dict(cached[2])
        # A route built per call is a new tuple: equal names and the same registrations
        # (descriptions are per registration) still reuse the cached params.
        manager = self.llm_manager
        descriptions = tuple(manager.describe_model(name) for name in route)
        if (
            cached is None
            or cached[0] != route
            or cached[1] != settings
            or not all(map(operator.is_, descriptions, cached[3]))
        ):
            params = {
                "model": route[0] if route else None,
                "fallbacks": list(route[1:]),
                "providers": {n: d["provider"] for n, d in zip(route, descriptions, strict=True)},
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
                "top_p": self.top_p,
                "seed": self.seed,
                "stop": stop,
            }
            cached = core.identity = (route, settings, params, descriptions)
        return dict(cached[2])

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        # LangChain's own reads `dict()` under a context that silences deprecation warnings
        # (for subclasses overriding it), which costs more than the rest of the call's
        # parameters; this class does not override `dict()`, so the same dict is built directly.
        params = self._identifying_params
        params["_type"] = self._llm_type
        params["stop"] = stop
        return {**params, **kwargs}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        model = kwargs.get("model")
        if not isinstance(model, str):
            route = self._route()
            model = route[0] if route else "reliable-llm"
        params = LangSmithParams(
            ls_provider="reliable_llm", ls_model_name=model, ls_model_type="chat"
        )
        if stop:
            params["ls_stop"] = stop
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, int | float) and not isinstance(temperature, bool):
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
            params["ls_max_tokens"] = max_tokens
        return params

    # -- calls -------------------------------------------------------------------------------

    def _options(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[Message], dict[str, Any], str | None, Sequence[str] | None]:
        """The manager's arguments for one call, and its per-call model and fallbacks."""
        options: dict[str, Any] = {}
        fields = self.__dict__
        for name in _SAMPLING:
            value = kwargs.pop(name, None) if kwargs else None
            if value is None:
                value = fields[name]
            if value is not None:
                options[name] = value
        stop = stop if stop is not None else self.stop
        if stop:
            options["stop"] = list(stop)
        for name in _CALL_DEFAULTS:
            value = fields[name]
            if value is not None:
                options[name] = value
        model, fallbacks = (self.model, self.fallbacks) if self._per_call() else (None, None)
        if kwargs:
            kwargs.pop("stream", None)
            model = kwargs.pop("model", None) or model
            fallbacks = kwargs.pop("fallbacks", fallbacks)
            options.update(kwargs)
            if "tools" in kwargs or "tool_choice" in kwargs:
                normalize_tools(options)
        # Without overrides the manager uses its own prebuilt route (the fast path).
        if model is not None:
            options["model"] = model
        if fallbacks is not None:
            options["fallback_chain"] = fallbacks
        return from_langchain_messages(messages), options, model, fallbacks

    def _result(self, response: ChatResponse, traced: dict[str, Any]) -> ChatResult:
        message = to_ai_message(response)
        info: dict[str, Any] = {"finish_reason": response.finish_reason, **traced}
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request, options, model, fallbacks = self._options(messages, stop, kwargs)
        manager = self.llm_manager
        try:
            response = manager.chat(request, **options)
        except (AllModelsFailedError, StreamInterruptedError) as exc:
            trace_failure(run_manager, exc, manager, model, fallbacks)
            raise to_langchain_error(exc) from exc
        traced = trace_response(run_manager, response, manager, model, fallbacks)
        return self._result(response, traced)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request, options, model, fallbacks = self._options(messages, stop, kwargs)
        manager = self.llm_manager
        try:
            response = await manager.achat(request, **options)
        except (AllModelsFailedError, StreamInterruptedError) as exc:
            trace_failure(run_manager, exc, manager, model, fallbacks)
            raise to_langchain_error(exc) from exc
        traced = trace_response(run_manager, response, manager, model, fallbacks)
        return self._result(response, traced)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request, options, model, fallbacks = self._options(messages, stop, kwargs)
        manager = self.llm_manager
        stream = manager.stream(request, **options)
        try:
            for chunk in translate(stream):
                if stream.response is not None:  # exhausted: this is the closing chunk
                    _add_trace(chunk, run_manager, stream.response, manager, model, fallbacks)
                yield chunk
        except Exception as exc:
            trace_failure(run_manager, exc.__cause__ or exc, manager, model, fallbacks)
            raise

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request, options, model, fallbacks = self._options(messages, stop, kwargs)
        manager = self.llm_manager
        stream = manager.astream(request, **options)
        try:
            async for chunk in atranslate(stream):
                if stream.response is not None:  # exhausted: this is the closing chunk
                    _add_trace(chunk, run_manager, stream.response, manager, model, fallbacks)
                yield chunk
        except Exception as exc:
            trace_failure(run_manager, exc.__cause__ or exc, manager, model, fallbacks)
            raise

    # -- declarative helpers -----------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[ToolLike],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; they travel with every request, to the fallback models too.

        Args:
            tools: LangChain tools, functions, Pydantic classes or OpenAI tool dicts.
            tool_choice: ``"auto"``, ``"none"``, ``"any"`` / ``"required"`` / True (force a
                call), or a tool name (force that tool).
            strict: Ask providers that support it to follow the schemas exactly.
            **kwargs: Further parameters bound to every call.
        """
        formatted = format_tools(tools, strict=strict)
        names = [t["function"]["name"] for t in formatted]
        choice = tool_choice_for(tool_choice, names)
        if choice is not None:
            kwargs["tool_choice"] = choice
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: StructuredMethod = "function_calling",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """A runnable returning ``schema``-shaped output.

        Args:
            schema: A Pydantic class, TypedDict, JSON Schema or OpenAI tool dict.
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead of raising on
                parse errors.
            method: ``"function_calling"`` (a forced tool call, default), ``"json_schema"``
                (``response_format`` with the schema, for models that support it) or
                ``"json_mode"`` (``response_format={"type": "json_object"}``).
            strict: Passed to providers that support strict schemas.

        Raises:
            ValueError: Unknown ``method`` or unexpected keyword arguments.
        """
        if kwargs:
            raise ValueError(f"Received unsupported arguments {kwargs}")
        return structured_output(
            self, schema, method=method, include_raw=include_raw, strict=strict
        )


def _add_trace(
    chunk: ChatGenerationChunk,
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
    response: ChatResponse,
    manager: LLMManager,
    model: str | None,
    fallbacks: Sequence[str] | None,
) -> None:
    """Give a stream's closing chunk the request's trace attributes."""
    attributes = trace_response(run_manager, response, manager, model, fallbacks)
    if chunk.generation_info is not None:
        chunk.generation_info.update(attributes)


def _freeze_signatures(cls: type, names: tuple[str, ...]) -> None:
    """Store each method's signature on it, as `inspect.signature` would compute it.

    LangChain inspects the signature of `_generate` / `_agenerate` on every call (to see
    whether they take ``run_manager``); building it from the function costs about 10 µs a
    call, a stored ``__signature__`` (returned as is) about 1. The stored signature is the one
    computed here, so what LangChain sees does not change.
    """
    for name in names:
        function = inspect.unwrap(getattr(cls, name))
        function.__signature__ = inspect.signature(function)


_freeze_signatures(ReliableChatModel, ("_generate", "_agenerate"))
