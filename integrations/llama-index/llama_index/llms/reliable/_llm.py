"""`ReliableLLM`: a LlamaIndex `FunctionCallingLLM` served by a reliable-llm `LLMManager`."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.base.llms.types import ChatResponse as LIChatResponse
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.llms.reliable._convert import (
    from_li_messages,
    to_li_response,
    tool_selections,
)
from llama_index.llms.reliable._events import install_event_bridge
from llama_index.llms.reliable._manager_setup import (
    OWN_MANAGER_OPTIONS,
    Core,
    build_core,
    check_option_names,
)
from llama_index.llms.reliable._metadata import model_metadata, response_info
from llama_index.llms.reliable._stream import StreamTranslator, atranslate, translate
from llama_index.llms.reliable._tools import chat_kwargs_with_tools, keep_first_tool_call

from reliable_llm import (
    AsyncChatStream,
    BreakerPolicy,
    CachePolicy,
    ChatResponse,
    ChatStream,
    Clock,
    LLMManager,
    Message,
    RetryPolicy,
    TimeoutPolicy,
)

if TYPE_CHECKING:
    from llama_index.core.tools import BaseTool

__all__ = ["ReliableLLM"]

_SAMPLING = ("temperature", "max_tokens", "top_p", "seed", "stop")
_CALL_DEFAULTS = ("use_cache", "cache_ttl", "timeout")


def _completion(response: ChatResponse) -> CompletionResponse:
    return CompletionResponse(
        text=response.text, raw=response.to_dict(), additional_kwargs=response_info(response)
    )


class ReliableLLM(FunctionCallingLLM):
    """A LlamaIndex LLM with circuit breakers, retries, fallbacks, caching and metrics.

    Every call goes through a reliable-llm `LLMManager`: the active model first, then the
    fallback chain; per-model breakers skip models that keep failing; transient errors are
    retried with backoff; identical requests are answered from the cache. LlamaIndex sees one
    LLM call per logical call; retries, fallbacks, breaker transitions and cache hits are
    emitted as extra instrumentation events (see ``llama_index.llms.reliable`` events).

    Build it around a manager you configured, or from plain parameters:

    Example:
        >>> llm = ReliableLLM(manager=manager)
        >>> llm = ReliableLLM(
        ...     models={"primary": OpenAI(model="gpt-4o-mini"), "backup": "groq:llama-3.3-70b"},
        ...     max_retries=2,
        ... )

    `langchain_reliable_llm.ReliableChatModel` takes the same options with the same meanings.
    Responses' ``additional_kwargs`` (and the last response of a stream) say how the answer
    was obtained, under the same keys as that adapter's ``response_metadata``: ``model``,
    ``provider``, ``provider_model``, ``finish_reason``, ``cached``, ``fallback_from``,
    ``fallbacks`` and ``attempts``, plus token counts.

    Args:
        manager: The manager to serve calls. Mutually exclusive with ``models``.
        models: Models to register on a new manager: `reliable_llm.Provider`s, seed-style
            callables, ``"<preset>:<model>"`` strings or LlamaIndex LLMs (wrapped in
            `LlamaIndexLLMProvider`).
        model: The model tried first (default: the manager's active model; with ``models``,
            the first one).
        fallbacks: The models tried after it, in order (default: the manager's chain; with
            ``models``, the other models in order).
        max_retries, enable_caching, retry, breaker, failure_threshold, recovery_timeout,
            cache_policy, timeouts, clock: Options of the new manager (only with ``models``).
        model_metadata: Metadata per model name (``context_window``, ``max_output_tokens``,
            ``function_calling``, ``model_name``, ...), only with ``models``.
        **kwargs: Fields of this LLM (``temperature``, ``max_tokens``, ``top_p``, ``seed``,
            ``stop``, ``use_cache``, ``cache_ttl``, ``timeout``, ``additional_kwargs``,
            ``system_prompt``, ...).

    Raises:
        ConfigurationError: Neither or both of ``manager`` and ``models``, manager options
            with an existing manager, or an invalid model or option.
        UnknownModelError: ``model`` or a fallback is not registered.
    """

    model: str | None = Field(
        default=None, description="Registered model tried first; None: the manager's active one."
    )
    fallbacks: list[str] | None = Field(
        default=None, description="Models tried after it, in order; None: the manager's chain."
    )
    temperature: float | None = Field(default=None, description="Sampling temperature.")
    max_tokens: int | None = Field(default=None, description="Maximum tokens to generate.")
    top_p: float | None = Field(default=None, description="Nucleus sampling probability mass.")
    seed: int | None = Field(default=None, description="Sampling seed, for providers with one.")
    stop: list[str] | None = Field(default=None, description="Sequences that end the answer.")
    use_cache: bool | None = Field(
        default=None, description="Use the response cache; None: the manager's setting."
    )
    cache_ttl: float | None = Field(default=None, description="Seconds answers stay cached.")
    timeout: float | None = Field(
        default=None, description="Seconds a call may take, retries and fallbacks included."
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra parameters sent with every request."
    )

    # The manager and caches live in the instance __dict__ under `_core`, not in a pydantic
    # private attribute: pydantic resolves those through __getattr__ on every access, which
    # showed in the per-call overhead. Underscore keys are not fields, so they are never dumped.
    if TYPE_CHECKING:
        _core: Core

    def __init__(
        self,
        *,
        manager: LLMManager | None = None,
        models: Mapping[str, Any] | None = None,
        model: str | None = None,
        fallbacks: Sequence[str] | None = None,
        max_retries: int | None = None,
        enable_caching: bool | None = None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        failure_threshold: int | None = None,
        recovery_timeout: float | None = None,
        cache_policy: CachePolicy | None = None,
        timeouts: TimeoutPolicy | None = None,
        clock: Clock | None = None,
        model_metadata: Mapping[str, Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        given = {
            "max_retries": max_retries,
            "enable_caching": enable_caching,
            "retry": retry,
            "breaker": breaker,
            "failure_threshold": failure_threshold,
            "recovery_timeout": recovery_timeout,
            "cache_policy": cache_policy,
            "timeouts": timeouts,
            "clock": clock,
            "model_metadata": model_metadata,
        }
        known = [*type(self).model_fields, "manager", "models", *OWN_MANAGER_OPTIONS]
        check_option_names("ReliableLLM", kwargs, known)
        chain = None if fallbacks is None else list(fallbacks)
        super().__init__(model=model, fallbacks=chain, **kwargs)
        options = {k: v for k, v in given.items() if v is not None}
        core = build_core(
            manager, models, model=self.model, fallbacks=self.fallbacks, options=options
        )
        self.__dict__["_core"] = core
        install_event_bridge(core.manager)

    @classmethod
    def class_name(cls) -> str:
        """Return the class name."""
        return "ReliableLLM"

    @property
    def manager(self) -> LLMManager:
        """The manager serving this LLM (metrics, breakers, cache, models)."""
        return self._core.manager

    def _metadata_key(self, core: Core) -> tuple[str, int | None] | None:
        per_call = core.per_call(self.model, self.fallbacks)
        name = self.model if per_call and self.model else core.manager.active_model
        return None if name is None else (name, self.max_tokens)

    def _described(self) -> tuple[Mapping[str, Any], LLMMetadata, dict[str, Any]] | None:
        """The registration, metadata and payload of the model tried first (None: no model).

        Computed once per registration of the model (and ``max_tokens``) and cached.
        """
        core = self._core
        key = self._metadata_key(core)
        if key is None:
            return None
        info = core.manager.describe_model(key[0])
        cached = core.described.get(key)
        if cached is None or cached[0] is not info:  # a re-registered model has a new info
            metadata = model_metadata(key[0], info, max_tokens=key[1])
            payload = {"class_name": self.class_name(), **metadata.model_dump()}
            cached = core.described[key] = (info, metadata, payload)
        return cached

    @property
    def metadata(self) -> LLMMetadata:
        """What the model tried first can do (see `model_metadata` for the sources)."""
        described = self._described()
        if described is None:
            return LLMMetadata(is_chat_model=True, is_function_calling_model=True)
        return described[1]

    def to_payload(self) -> dict[str, Any]:
        """Secret-free description for instrumentation: the class name and `metadata`."""
        described = self._described()
        if described is None:
            return {"class_name": self.class_name(), **self.metadata.model_dump()}
        return dict(described[2])

    # -- plumbing ----------------------------------------------------------------------------

    def _params(self, kwargs: Mapping[str, Any], core: Core) -> dict[str, Any]:
        fields = self.__dict__  # plain reads: this runs on every call
        params: dict[str, Any] = {}
        for name in _SAMPLING:
            value = fields[name]
            if value is not None:
                params[name] = value
        if fields["additional_kwargs"]:
            params.update(fields["additional_kwargs"])
        if kwargs:
            params.update(kwargs)
        if core.per_call(fields["model"], fields["fallbacks"]):
            if fields["model"] is not None:
                params.setdefault("model", fields["model"])
            if fields["fallbacks"] is not None:
                params.setdefault("fallback_chain", fields["fallbacks"])
        for name in _CALL_DEFAULTS:
            value = fields[name]
            if value is not None:
                params.setdefault(name, value)
        return params

    @staticmethod
    def _messages(messages: str | Sequence[ChatMessage]) -> str | list[Message]:
        # A completion prompt goes to the manager as one user message, unconverted.
        return messages if isinstance(messages, str) else from_li_messages(messages)

    def _chat(
        self, messages: str | Sequence[ChatMessage], kwargs: Mapping[str, Any]
    ) -> ChatResponse:
        core = self._core
        return core.manager.chat(self._messages(messages), **self._params(kwargs, core))

    async def _achat(
        self, messages: str | Sequence[ChatMessage], kwargs: Mapping[str, Any]
    ) -> ChatResponse:
        core = self._core
        return await core.manager.achat(self._messages(messages), **self._params(kwargs, core))

    def _stream(
        self, messages: str | Sequence[ChatMessage], kwargs: Mapping[str, Any]
    ) -> ChatStream:
        core = self._core
        return core.manager.stream(self._messages(messages), **self._params(kwargs, core))

    def _astream(
        self, messages: str | Sequence[ChatMessage], kwargs: Mapping[str, Any]
    ) -> AsyncChatStream:
        core = self._core
        return core.manager.astream(self._messages(messages), **self._params(kwargs, core))

    # -- chat --------------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> LIChatResponse:
        """Answer a conversation.

        Raises:
            AllModelsFailedError: No model answered; its ``failures`` say why, and its cause is
                the last provider error (whose cause is the original exception).
            ConfigurationError: A message or parameter cannot be sent.
        """
        return to_li_response(self._chat(messages, kwargs))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> LIChatResponse:
        """Async twin of `chat`; never blocks the event loop."""
        return to_li_response(await self._achat(messages, kwargs))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream the answer: ``message.content`` is cumulative, ``delta`` the new text.

        Raises:
            AllModelsFailedError: No model started streaming.
            StreamInterruptedError: The stream broke after text was yielded.
        """
        return translate(self._stream(messages, kwargs), StreamTranslator().chat)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async twin of `stream_chat`."""
        return atranslate(self._astream(messages, kwargs), StreamTranslator().chat)

    # -- complete ----------------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Answer a prompt, sent as one user message (raises as `chat` does)."""
        return _completion(self._chat(prompt, kwargs))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async twin of `complete`."""
        return _completion(await self._achat(prompt, kwargs))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream the answer to a prompt: ``text`` is cumulative, ``delta`` the new text."""
        return translate(self._stream(prompt, kwargs), StreamTranslator().completion)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async twin of `stream_complete`."""
        return atranslate(self._astream(prompt, kwargs), StreamTranslator().completion)

    # -- tools -------------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` arguments that offer ``tools`` (see `chat_kwargs_with_tools`)."""
        return chat_kwargs_with_tools(
            tools, user_msg, chat_history, tool_required, tool_choice, kwargs
        )

    def _validate_chat_with_tools_response(
        self,
        response: LIChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> LIChatResponse:
        """Keep only the first tool call unless parallel calls are allowed."""
        return response if allow_parallel_tool_calls else keep_first_tool_call(response)

    def get_tool_calls_from_response(
        self,
        response: LIChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """The tool calls the model requested (from `ToolCallBlock`s or legacy kwargs).

        Raises:
            ValueError: There is none and ``error_on_no_tool_call`` is set.
        """
        selections = tool_selections(response.message)
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but got 0 tool calls.")
        return selections

    def __repr__(self) -> str:
        return f"ReliableLLM(model={self.metadata.model_name!r}, manager={self._core.manager!r})"


def _freeze_signatures(cls: type, names: tuple[str, ...]) -> None:
    """Store each call method's signature on it, as `inspect.signature` would compute it.

    LlamaIndex's instrumentation binds the arguments of every call to the method's signature
    (``inspect.signature(func).bind(...)`` in each span); building that signature from the
    function costs about 7 µs a call, a stored ``__signature__`` (returned as is) about 1.
    The stored signature is the one computed here, so what is bound does not change.
    """
    for name in names:
        function = inspect.unwrap(getattr(cls, name))
        function.__signature__ = inspect.signature(function)


_freeze_signatures(
    ReliableLLM,
    (
        "chat",
        "achat",
        "stream_chat",
        "astream_chat",
        "complete",
        "acomplete",
        "stream_complete",
        "astream_complete",
    ),
)
