"""`ReliableChatModel`: a LangChain chat model served by a reliable-llm `LLMManager`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Self

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import ConfigDict, Field, model_validator

from langchain_reliable_llm._convert import from_langchain_messages, to_ai_message
from langchain_reliable_llm._errors import to_langchain_error
from langchain_reliable_llm._manager_setup import OWN_MANAGER_SETTINGS, attach_manager
from langchain_reliable_llm._stream_tail import StreamTail
from langchain_reliable_llm._structured import StructuredMethod, structured_output
from langchain_reliable_llm._tools import ToolLike, format_tools, normalize_tools, tool_choice_for
from reliable_llm import (
    AllModelsFailedError,
    LLMManager,
    Message,
    StreamInterruptedError,
)

__all__ = ["ReliableChatModel"]

_SAMPLING = ("temperature", "max_tokens", "top_p", "seed")


class ReliableChatModel(BaseChatModel):
    """A LangChain chat model with circuit breakers, retries, fallbacks, caching and metrics.

    Build it around an existing manager, whose breakers, cache and metrics are then shared by
    every chain that uses it::

        model = ReliableChatModel(manager=manager, temperature=0)

    or from plain parameters, e.g. in configuration::

        model = ReliableChatModel(
            models={"primary": OpenAIProvider("gpt-4o-mini"), "backup": backup},
            model="primary", fallbacks=["backup"], max_retries=2,
        )

    Each call is one LangChain run; the response's ``response_metadata`` names the model that
    answered (``model_name``), the models given up before it (``fallback_from``), every
    upstream ``attempts``, whether the answer was ``cached``, and the ``finish_reason``.
    Per call, ``model=`` picks the first model to try, ``fallbacks=`` the chain after it,
    ``use_cache=`` / ``cache_ttl=`` / ``timeout=`` override the defaults.

    Failures raise `ReliableChatModelError` (a `reliable_llm.AllModelsFailedError` that is
    also a `langchain_core.exceptions.ModelError`) or one of its subclasses.
    """

    manager: LLMManager | None = Field(default=None, exclude=True)
    """The manager serving requests; built from ``models`` when not given."""
    models: dict[str, Any] | None = Field(default=None, exclude=True)
    """Models (providers or ``fn(prompt, **kw)`` callables) for a manager of this model's own."""
    model: str | None = None
    """The registered model tried first (default: the manager's active model)."""
    fallbacks: list[str] | None = None
    """Models tried in order after ``model`` (default: the manager's fallback chain)."""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    timeout: float | None = None
    """Seconds a whole call may take, retries and fallbacks included."""
    max_retries: int | None = None
    """Retries per model of this model's own manager (default 3)."""
    failure_threshold: int | None = None
    """Consecutive failures that open a breaker of this model's own manager (default 5)."""
    recovery_timeout: float | None = None
    """Seconds a breaker of this model's own manager stays open (default 60)."""
    enable_caching: bool = True
    """Whether this model's own manager caches responses."""
    cache_ttl: float | None = None
    """Seconds an answer stays in reliable-llm's cache (default: the manager's policy)."""
    streaming: bool = False
    """Stream by default on invoke (LangChain's standard flag)."""
    clock: Any = Field(default=None, exclude=True)
    """Time source of this model's own manager (tests pass `reliable_llm.testing.FakeClock`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @model_validator(mode="after")
    def _attach_manager(self) -> Self:
        own = {n: getattr(self, n) for n in OWN_MANAGER_SETTINGS}
        self.manager = attach_manager(
            self.manager,
            self.models,
            model=self.model,
            fallbacks=self.fallbacks,
            enable_caching=self.enable_caching,
            **own,
        )
        return self

    @property
    def llm_manager(self) -> LLMManager:
        """The manager serving this model: its metrics, breakers and cache."""
        return self.manager  # type: ignore[return-value]  # set by the validator

    # -- LangChain identity ------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "reliable-llm"

    def _route(self, model: str | None = None, fallbacks: Sequence[str] | None = None) -> list[str]:
        manager = self.llm_manager
        if model is None and fallbacks is None and self.model is None and self.fallbacks is None:
            return list(manager.route)  # the manager's own route, precomputed
        first = model or self.model or manager.active_model
        chain = fallbacks if fallbacks is not None else self.fallbacks
        if chain is None:
            chain = manager.fallback_chain
        route = [first] if first else []
        route.extend(n for n in chain if n not in route)
        return route

    def _describe(self, manager: LLMManager, name: str) -> Any:
        try:
            return manager.describe_model(name)["provider"]
        except KeyError:
            return None

    @property
    def _identifying_params(self) -> dict[str, Any]:
        manager = self.llm_manager
        route = self._route()
        return {
            "model": route[0] if route else None,
            "fallbacks": route[1:],
            "providers": {name: self._describe(manager, name) for name in route},
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": self.stop,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "reliable_llm"
        model = kwargs.get("model")
        params["ls_model_name"] = (
            model if isinstance(model, str) else (self._route() or ["reliable-llm"])[0]
        )
        return params

    # -- calls -------------------------------------------------------------------------------

    def _options(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[Message], dict[str, Any], list[str]]:
        """The manager's arguments for one call, and the route of models it will take."""
        options: dict[str, Any] = {}
        for name in _SAMPLING:
            value = kwargs.pop(name, None) if kwargs else None
            if value is None:
                value = getattr(self, name)
            if value is not None:
                options[name] = value
        stop = stop if stop is not None else self.stop
        if stop:
            options["stop"] = list(stop)
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.cache_ttl is not None:
            options["cache_ttl"] = self.cache_ttl
        model = self.model
        fallbacks = self.fallbacks
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
        return from_langchain_messages(messages), options, self._route(model, fallbacks)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request, options, route = self._options(messages, stop, kwargs)
        try:
            response = self.llm_manager.chat(request, **options)
        except (AllModelsFailedError, StreamInterruptedError) as exc:
            raise to_langchain_error(exc) from exc
        message = to_ai_message(response, route)
        info = {"finish_reason": response.finish_reason}
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request, options, route = self._options(messages, stop, kwargs)
        try:
            response = await self.llm_manager.achat(request, **options)
        except (AllModelsFailedError, StreamInterruptedError) as exc:
            raise to_langchain_error(exc) from exc
        message = to_ai_message(response, route)
        info = {"finish_reason": response.finish_reason}
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request, options, route = self._options(messages, stop, kwargs)
        manager = self.llm_manager
        tail = StreamTail(manager, route)
        iterator = manager.stream(request, **options)
        try:
            while (chunk := tail.pull(iterator)) is not None:
                piece = tail.add(chunk)
                if piece is not None:
                    yield piece
        except (AllModelsFailedError, StreamInterruptedError) as exc:
            raise to_langchain_error(exc) from exc
        finally:
            # A consumer that stops early must end the manager's stream now, not at GC.
            iterator.close()
        yield tail.last()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request, options, route = self._options(messages, stop, kwargs)
        manager = self.llm_manager
        tail = StreamTail(manager, route)
        iterator = manager.astream(request, **options)
        try:
            while (chunk := await tail.apull(iterator)) is not None:
                piece = tail.add(chunk)
                if piece is not None:
                    yield piece
        except (AllModelsFailedError, StreamInterruptedError) as exc:
            raise to_langchain_error(exc) from exc
        finally:
            await iterator.aclose()
        yield tail.last()

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
