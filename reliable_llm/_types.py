"""Chat-shaped value types: messages, requests, responses, usage and stream chunks.

What callers send (`Message`, `Tool`, `ChatRequest`) is read-only: a request passes unchanged
through every retry and fallback. What the manager returns (`ChatResponse`, `StreamChunk`,
`Usage`, `ToolCall`) is built fresh for each caller, as a plain slotted dataclass (about five
times cheaper to build than a frozen one on the per-call and per-chunk paths); the cache keeps
JSON, never these objects, so changing one cannot affect another caller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from reliable_llm._content import (
    ContentChange,
    Part,
    ReasoningPart,
    TextPart,
    check_content,
    content_text,
)
from reliable_llm._errors import ConfigurationError, ProviderError


def check_text(name: str, text: str) -> None:
    """Raise `ConfigurationError` unless ``text`` can be sent as UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise ConfigurationError(
            f"{name} contains an unpaired surrogate U+{ord(bad):04X} at index {exc.start}, "
            "which cannot be encoded as UTF-8 for any model; decode your input with "
            "errors='replace' (or fix its source) before sending it"
        ) from None


Role = Literal["system", "user", "assistant", "tool"]
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})
_ROLES = frozenset(("system", "user", "assistant", "tool"))


@dataclass(slots=True)
class ToolCall:
    """A call of one tool requested by the model; ``arguments`` is a JSON object text."""

    id: str
    name: str
    arguments: str = "{}"

    @property
    def args(self) -> dict[str, Any]:
        """The arguments parsed from JSON (an empty dict for empty or non-object text)."""
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


Content = str | tuple[Part, ...]
"""A message's content: plain text, or an ordered tuple of parts (see `reliable_llm._content`)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message.

    Build them with the constructors: ``Message.system(...)``, ``Message.user(...)``,
    ``Message.assistant(...)`` and ``Message.tool(...)``.

    ``content`` is a ``str`` or an ordered tuple of parts (a list passed in is stored as a
    tuple)::

        Message.user("What is in this picture?")
        Message.user([TextPart("What is in this picture?"),
                      ImagePart(data="iVBORw0KGgo...", media_type="image/png")])
        Message.system([TextPart("<long instructions>", cache_control=CacheControl())])
        Message.assistant([ReasoningPart("...", signature="EqQB...", provider="anthropic"),
                           TextPart("The answer is 4.")])
        Message.tool([TextPart("chart:"), ImagePart(url="https://...")], tool_call_id="c1")

    Raises:
        ConfigurationError: An unknown role, content that is neither a str nor a sequence of
            parts, a part the role cannot carry, or text that cannot be sent as UTF-8.
    """

    role: Role
    content: Content = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ConfigurationError(
                f"message role must be one of {sorted(_ROLES)}, got {self.role!r}"
            )
        content = self.content
        if type(content) is str:
            if not content.isascii():
                check_text("message content", content)
        elif isinstance(content, str):
            # A str subclass (LangChain's `.text` accessor, say) is held as a plain str, so
            # every later `type(content) is str` check holds.
            object.__setattr__(self, "content", str(content))
            if not content.isascii():
                check_text("message content", content)
        else:
            object.__setattr__(self, "content", check_content(self.role, content))
        if self.name is not None or self.tool_call_id is not None or self.tool_calls:
            self._check_fields()
        if self.role == "tool" and not self.tool_call_id:
            raise ConfigurationError("a tool message needs the tool_call_id it answers")

    def _check_fields(self) -> None:
        texts = [("message name", self.name), ("tool_call_id", self.tool_call_id)]
        for call in self.tool_calls:
            texts += [("tool call id", call.id), ("tool call name", call.name)]
            texts.append(("tool call arguments", call.arguments))
        for name, text in texts:
            if isinstance(text, str) and not text.isascii():
                check_text(name, text)

    @property
    def text(self) -> str:
        """The message's text: ``content`` itself, or its text parts joined."""
        content = self.content
        return content if type(content) is str else content_text(content)  # type: ignore[arg-type]

    @property
    def parts(self) -> tuple[Part, ...]:
        """The content as parts (a non-empty str is one `TextPart`)."""
        content = self.content
        if isinstance(content, str):
            return (TextPart(content),) if content else ()
        return content

    @classmethod
    def system(cls, content: str | Sequence[Part]) -> Message:
        """A system instruction."""
        return cls("system", content)  # type: ignore[arg-type]

    @classmethod
    def user(cls, content: str | Sequence[Part], *, name: str | None = None) -> Message:
        """A user turn."""
        return cls("user", content, name=name)  # type: ignore[arg-type]

    @classmethod
    def assistant(
        cls, content: str | Sequence[Part] = "", tool_calls: Sequence[ToolCall] = ()
    ) -> Message:
        """An assistant turn, optionally requesting tool calls."""
        return cls("assistant", content, tuple(tool_calls))  # type: ignore[arg-type]

    @classmethod
    def tool(
        cls, content: str | Sequence[Part], tool_call_id: str, *, name: str | None = None
    ) -> Message:
        """The result of a tool call, answering ``tool_call_id``; its parts may include
        images and files."""
        return cls("tool", content, tool_call_id=tool_call_id, name=name)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(slots=True)
class Usage:
    """Token counts of one response.

    ``input_tokens`` counts every input token, those read from or written to the provider's
    prompt cache included; ``cache_read_tokens`` and ``cache_creation_tokens`` say how many of
    them were. ``reasoning_tokens`` are the output tokens spent reasoning, as the provider
    reports them (most count them within ``output_tokens``; xAI counts them apart).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def to_list(self) -> list[int]:
        """The counts as a JSON list: two items, or five when a detail is known."""
        details = [self.cache_read_tokens, self.cache_creation_tokens, self.reasoning_tokens]
        if any(details):
            return [self.input_tokens, self.output_tokens, *details]
        return [self.input_tokens, self.output_tokens]


class ChatRequest(NamedTuple):
    """A logical request: messages plus generation parameters.

    ``tool_choice`` is ``"auto"``, ``"none"``, ``"required"`` or the name of one tool.
    ``response_format`` follows OpenAI's shape: ``{"type": "json_object"}`` or
    ``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}``.
    ``extra`` passes provider-specific parameters through unchanged.

    A named tuple: read-only as it passes through every retry and fallback, and built once per
    call at a fraction of a frozen dataclass's cost.
    """

    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None
    response_format: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = _NO_EXTRA

    @property
    def prompt(self) -> str:
        """The conversation as one prompt text, for seed-style ``fn(prompt)`` models.

        A single user message is its own content; longer conversations are rendered as a
        ``Role: content`` transcript.
        """
        messages = self.messages
        if len(messages) == 1 and messages[0].role == "user":
            content = messages[0].content
            return content if type(content) is str else messages[0].text
        return "\n\n".join(
            f"{m.role.capitalize()}: {m.content if type(m.content) is str else m.text}"
            for m in messages
        )


FinishReason = str
"""``"stop"``, ``"length"``, ``"tool_calls"``, ``"content_filter"``, ``"refusal"`` (the model
declined; never cached) or ``"error"``."""


class Attempt(NamedTuple):
    """One upstream call made while serving a request (a named tuple: cheap and read-only).

    ``cancelled`` is True for a call that ended without an outcome: the caller cancelled the
    request, abandoned its stream, or an exception that is not an error (``KeyboardInterrupt``,
    say) went through it. ``duration`` is in seconds. ``started`` is when the call began, in
    seconds on the manager's monotonic clock; ``first_chunk`` is the seconds from then to a
    stream's first chunk (None for a call that is not an opened stream).
    """

    model: str
    number: int
    duration: float
    error: ProviderError | None = None
    cancelled: bool = False
    started: float = 0.0
    first_chunk: float | None = None

    @property
    def succeeded(self) -> bool:
        """Whether this attempt produced the answer."""
        return self.error is None and not self.cancelled


@dataclass(slots=True)
class ChatResponse:
    """The answer to a request, and how it was obtained.

    Attributes:
        text: The assistant's text.
        tool_calls: Tool calls the model requested.
        finish_reason: Why generation stopped (``"stop"``, ``"length"``, ``"tool_calls"``, ...).
        usage: Token counts, when the provider reported them.
        model: The registered model that answered.
        provider: The provider that answered (``"openai"``, ``"anthropic"``, ``"callable"``, ...).
        provider_model: The model id the provider reported, when it differs from ``model``.
        cached: Whether the answer came from the cache.
        attempts: Every upstream call made for this request, failures included.
        fallback_from: The models given up before the one that answered, in order (a model
            skipped because its breaker was open is listed, though it was not called).
        cost: What the answering call cost, from the model's ``metadata["prices"]`` and the
            reported usage; None without prices or usage, and for a cached answer.
        response_id: The provider's id of the answer (``chatcmpl-...``, ``msg_...``), when it
            sent one; None for a cached answer.
        fallback_reasons: Why each model of ``fallback_from`` was given up, in the same
            order (`FailureReason` values: ``"retries_exhausted"``, ``"non_retryable"``,
            ``"circuit_open"``, ``"deadline_exceeded"``, ...).
        reasoning: The model's reasoning, in order, as its provider issued it (text,
            signature or redacted data); `message` carries it back into a conversation.
        content_changes: What the route changed in the request's content for the models it
            tried (cache markers or reasoning stripped, files converted), in order.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
    usage: Usage | None = None
    model: str = ""
    provider: str = ""
    provider_model: str | None = None
    cached: bool = False
    attempts: tuple[Attempt, ...] = ()
    fallback_from: tuple[str, ...] = ()
    cost: float | None = None
    response_id: str | None = None
    fallback_reasons: tuple[str, ...] = ()
    reasoning: tuple[ReasoningPart, ...] = ()
    content_changes: tuple[ContentChange, ...] = ()

    @property
    def message(self) -> Message:
        """The answer as an assistant message, ready to append to a conversation (its
        reasoning parts first, so a provider that requires them back gets them)."""
        if self.reasoning:
            parts: tuple[Part, ...] = self.reasoning
            if self.text:
                parts += (TextPart(self.text),)
            return Message("assistant", parts, self.tool_calls)
        return Message("assistant", self.text, self.tool_calls)

    @property
    def fallbacks(self) -> int:
        """How many models were given up before the one that answered."""
        return len(self.fallback_from)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict of the answer (without attempts or the cached flag); its
        reasoning, when there is any, as ``[text, signature, redacted_data, provider]`` lists."""
        usage = self.usage
        data: dict[str, Any] = {
            "text": self.text,
            "tool_calls": [[c.id, c.name, c.arguments] for c in self.tool_calls],
            "finish_reason": self.finish_reason,
            "usage": None if usage is None else usage.to_list(),
            "model": self.model,
            "provider": self.provider,
            "provider_model": self.provider_model,
        }
        if self.reasoning:
            data["reasoning"] = [
                [r.text, r.signature, r.redacted_data, r.provider] for r in self.reasoning
            ]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, cached: bool = False) -> ChatResponse:
        """Rebuild a response from :meth:`to_dict` output."""
        usage = data.get("usage")
        return cls(
            text=data["text"],
            tool_calls=tuple(ToolCall(*c) for c in data.get("tool_calls") or ()),
            finish_reason=data.get("finish_reason", "stop"),
            usage=None if usage is None else Usage(*usage),
            model=data.get("model", ""),
            provider=data.get("provider", ""),
            provider_model=data.get("provider_model"),
            cached=cached,
            reasoning=tuple(ReasoningPart(*r) for r in data.get("reasoning") or ()),
        )


def _is_call(item: object) -> bool:
    return (
        type(item) is list
        and len(item) == 3
        and type(item[0]) is str
        and type(item[1]) is str
        and type(item[2]) is str
    )


def _is_optional_str(item: object) -> bool:
    return item is None or type(item) is str


def _decode_reasoning(items: object) -> tuple[ReasoningPart, ...] | None:
    if type(items) is not list:
        return None
    parts = []
    for item in items:
        if type(item) is not list or len(item) != 4 or type(item[0]) is not str:
            return None
        if not all(_is_optional_str(x) for x in item[1:]):
            return None
        try:
            parts.append(ReasoningPart(*item))
        except ConfigurationError:
            return None
    return tuple(parts)


def decode_response(data: Mapping[str, Any]) -> ChatResponse | None:
    """A cached answer (`ChatResponse.to_dict` output) rebuilt as a fresh response marked
    ``cached``, or None when the stored value is not such an answer (a malformed entry is a
    miss, never a wrong answer)."""
    try:
        text = data["text"]
        calls = data.get("tool_calls") or ()
        usage = data.get("usage")
        finish = data.get("finish_reason", "stop")
        model = data.get("model", "")
        provider = data.get("provider", "")
        provider_model = data.get("provider_model")
    except (AttributeError, KeyError, TypeError):
        return None
    if (
        type(text) is not str
        or type(finish) is not str
        or type(model) is not str
        or type(provider) is not str
        or (provider_model is not None and type(provider_model) is not str)
    ):
        return None
    if calls and (type(calls) is not list or not all(_is_call(c) for c in calls)):
        return None
    if usage is not None:
        if (
            type(usage) is not list
            or len(usage) not in (2, 5)
            or any(type(n) is not int for n in usage)
        ):
            return None
        usage = Usage(*usage)
    response = ChatResponse(
        text,
        tuple([ToolCall(c[0], c[1], c[2]) for c in calls]) if calls else (),
        finish,
        usage,
        model,
        provider,
        provider_model,
        True,
    )
    if "reasoning" in data:
        reasoning = _decode_reasoning(data["reasoning"])
        if reasoning is None:
            return None
        response.reasoning = reasoning
    return response


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a streamed tool call; fragments with the same ``index`` belong together."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamChunk:
    """One piece of a streamed answer.

    The last chunk of a completed stream carries ``finish_reason`` and, when the provider
    reported them, ``usage``, ``provider_model`` (the model id the provider answered with) and
    ``response_id`` (the provider's id of the answer).
    ``model`` is the registered model that is streaming.

    ``reasoning`` is new reasoning text, streamed as it comes (for display); the closing
    chunk carries the whole reasoning as ``reasoning_parts``, as the provider issued it (with
    its signatures or redacted data), for the response and the next turn.
    """

    text: str = ""
    tool_call_deltas: tuple[ToolCallDelta, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    model: str = ""
    cached: bool = False
    provider_model: str | None = None
    response_id: str | None = None
    reasoning: str = ""
    reasoning_parts: tuple[ReasoningPart, ...] = ()
