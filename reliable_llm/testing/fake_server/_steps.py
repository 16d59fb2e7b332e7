"""Script steps: what the fake server does with one request.

A step is either a `Reply` (a successful completion) or a `Fault` (something going wrong
on the wire). Steps are small frozen dataclasses so a script reads like a table::

    server.script("gpt-4o", rate_limited(retry_after="2"), Reply("hello"))

Faults that only make sense mid-stream (`StreamErrorEvent`, `StreamCut`, `Hang` with
``after_chunks``) also have a documented meaning for non-streaming requests, so one script
can serve both kinds of client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

#: Finish reasons in OpenAI vocabulary, keyed by their Anthropic equivalent.
_TO_OPENAI = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
#: Stop reasons in Anthropic vocabulary, keyed by their OpenAI equivalent.
_TO_ANTHROPIC = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


@dataclass(frozen=True)
class ToolCallSpec:
    """One tool call the fake model makes.

    Attributes:
        name: The function / tool name.
        arguments: The arguments, as a mapping (serialised to JSON) or a raw JSON string.
            A string is sent verbatim, so malformed tool arguments can be scripted too.
        id: The call id; ``None`` lets the server generate a provider-style one
            (``call_...`` for OpenAI, ``toolu_...`` for Anthropic).

    Raises:
        TypeError: If ``arguments`` is a mapping that cannot be serialised to JSON.
    """

    name: str
    arguments: Mapping[str, object] | str = field(default_factory=dict)
    id: str | None = None

    def __post_init__(self) -> None:
        self.arguments_json()  # fail here, not on the server thread, if it cannot serialise

    def arguments_json(self) -> str:
        """Return the arguments as the JSON text the wire carries."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), separators=(",", ":"))

    def arguments_object(self) -> object:
        """Return the arguments as a JSON value (the raw string if it is not valid JSON)."""
        if not isinstance(self.arguments, str):
            return dict(self.arguments)
        try:
            return json.loads(self.arguments)
        except ValueError:
            return self.arguments


@dataclass(frozen=True)
class Reply:
    """A successful completion.

    Attributes:
        text: The assistant text ("" for a pure tool-call turn).
        tool_calls: Tool calls to make, in order.
        usage: ``(prompt_tokens, completion_tokens)``; ``None`` estimates both (about four
            characters per token, at least one).
        finish_reason: ``None`` computes it (``tool_calls`` / ``tool_use`` when there are
            tool calls, else ``stop`` / ``end_turn``). Either vocabulary is accepted and
            translated for the other protocol (``length`` <-> ``max_tokens``, ...).
            ``"refusal"`` makes ``text`` a refusal, spelled as each protocol does: OpenAI's
            ``message.refusal`` (``refusal`` deltas when streaming) with ``finish_reason``
            ``stop``, Anthropic's ``stop_reason: "refusal"``.
        latency: Seconds to wait before the response headers are sent.
        chunk_size: Characters per streamed text or tool-argument delta.
        chunk_interval: Seconds to wait between streamed deltas.
        reasoning: The model's reasoning before its answer: Anthropic's ``thinking`` block
            (``thinking_delta`` events when streaming), OpenAI-compatible servers'
            ``reasoning_content`` (DeepSeek's spelling; deltas when streaming).
        signature: The ``thinking`` block's signature (``signature_delta`` when streaming);
            ``None`` makes one up.
        cache_read_tokens: Input tokens read from the prompt cache (Anthropic's
            ``cache_read_input_tokens``, OpenAI's ``prompt_tokens_details.cached_tokens``).
        cache_creation_tokens: Input tokens written to the prompt cache (Anthropic's
            ``cache_creation_input_tokens``; OpenAI reports none).
        reasoning_tokens: Output tokens spent reasoning (OpenAI's
            ``completion_tokens_details.reasoning_tokens``).

    Raises:
        ValueError: On a negative delay, a ``chunk_size`` below one or negative usage.
    """

    text: str = ""
    tool_calls: Sequence[ToolCallSpec] = ()
    usage: tuple[int, int] | None = None
    finish_reason: str | None = None
    latency: float = 0.0
    chunk_size: int = 8
    chunk_interval: float = 0.0
    reasoning: str = ""
    signature: str | None = None
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if min(self.cache_read_tokens, self.cache_creation_tokens, self.reasoning_tokens) < 0:
            raise ValueError("cache and reasoning token counts must be >= 0")
        if self.latency < 0 or self.chunk_interval < 0:
            raise ValueError("latency and chunk_interval must be >= 0")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if self.usage is not None and min(self.usage) < 0:
            raise ValueError("usage token counts must be >= 0")

    @property
    def refusal(self) -> bool:
        """Whether ``text`` is a refusal."""
        return self.finish_reason == "refusal"

    def openai_finish_reason(self) -> str:
        """Return the finish reason in OpenAI vocabulary (a refusal finishes with ``stop``)."""
        if self.finish_reason is None:
            return "tool_calls" if self.tool_calls else "stop"
        if self.refusal:
            return "stop"
        return _TO_OPENAI.get(self.finish_reason, self.finish_reason)

    def anthropic_stop_reason(self) -> str:
        """Return the stop reason in Anthropic vocabulary."""
        if self.finish_reason is None:
            return "tool_use" if self.tool_calls else "end_turn"
        return _TO_ANTHROPIC.get(self.finish_reason, self.finish_reason)


@dataclass(frozen=True)
class Fault:
    """Base class of every scripted failure."""


@dataclass(frozen=True)
class HTTPError(Fault):
    """An HTTP error response with a provider-correct JSON body.

    Attributes:
        status: The HTTP status code.
        body: The exact body to send (a mapping is sent as JSON, a string verbatim);
            ``None`` renders the provider's own error shape for ``status``
            (OpenAI ``{"error": {"message", "type", "param", "code"}}``, Anthropic
            ``{"type": "error", "error": {"type", "message"}}``).
        headers: Extra response headers, e.g. ``{"retry-after": "2"}``.
        message: Overrides the default error message of the rendered body.
        code: The OpenAI error ``code`` of the rendered body (e.g. ``context_length_exceeded``);
            it also selects a fitting default message for both protocols.

    Raises:
        ValueError: If ``status`` is not a 4xx or 5xx code.
    """

    status: int
    body: Mapping[str, object] | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    message: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"HTTPError status must be 4xx or 5xx, got {self.status}")


@dataclass(frozen=True)
class Hang(Fault):
    """Hold the request open without answering, then close the connection.

    The wait runs on the server's event loop, so other connections are unaffected, and it
    ends early when the client disconnects or the server stops.

    Attributes:
        seconds: How long to hold the connection.
        after_chunks: For streaming requests, stall after this many content deltas instead
            of before the response headers. Ignored for non-streaming requests.
        reply: The answer whose stream stalls; ``None`` streams a stock sentence.

    Raises:
        ValueError: On negative ``seconds`` or ``after_chunks``.
    """

    seconds: float
    after_chunks: int | None = None
    reply: Reply | None = None

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("Hang seconds must be >= 0")
        _check_after_chunks(self.after_chunks or 0)


@dataclass(frozen=True)
class ResetConnection(Fault):
    """Reset the TCP connection (RST) after reading the request, before any response."""


@dataclass(frozen=True)
class MalformedJSON(Fault):
    """Answer 200 with a body that is not valid JSON (a broken SSE data line when streaming).

    Attributes:
        body: The broken text to send.
    """

    body: str = '{"id": "broken", "choices": [{"index": 0, "message": '


@dataclass(frozen=True)
class StreamErrorEvent(Fault):
    """Send an in-band error event in a 200 stream after some content deltas.

    OpenAI streams get ``data: {"error": {...}}``; Anthropic streams get ``event: error``
    with an ``overloaded_error`` by default. The body then ends cleanly. A non-streaming
    request gets the same error as an HTTP status instead (500 for OpenAI, 529 for an
    Anthropic ``overloaded_error``, else 500).

    Attributes:
        after_chunks: Content deltas sent before the error event.
        message: The error message; ``None`` uses the provider's usual wording.
        error_type: The error type; ``None`` means ``server_error`` (OpenAI) or
            ``overloaded_error`` (Anthropic).
        reply: The answer whose stream is interrupted; ``None`` streams a stock sentence.

    Raises:
        ValueError: On negative ``after_chunks``.
    """

    after_chunks: int = 0
    message: str | None = None
    error_type: str | None = None
    reply: Reply | None = None

    def __post_init__(self) -> None:
        _check_after_chunks(self.after_chunks)


@dataclass(frozen=True)
class StreamCut(Fault):
    """End a stream abruptly mid-answer: no finish reason, no ``[DONE]``/``message_stop``.

    Attributes:
        after_chunks: Content deltas sent before the cut.
        incomplete_transfer: ``False`` (default) delimits the body by closing the
            connection, so SDKs see a clean end of stream that simply lacks its finish;
            ``True`` uses chunked transfer encoding and closes without the final chunk,
            which HTTP clients report as a protocol/connection error.
        reply: The answer whose stream is cut; ``None`` streams a stock sentence.

    A non-streaming request gets half of its JSON body and then the connection closes.

    Raises:
        ValueError: On negative ``after_chunks``.
    """

    after_chunks: int = 0
    incomplete_transfer: bool = False
    reply: Reply | None = None

    def __post_init__(self) -> None:
        _check_after_chunks(self.after_chunks)


def _check_after_chunks(after_chunks: int) -> None:
    if after_chunks < 0:
        raise ValueError("after_chunks must be >= 0")


#: What a fault interrupts when it names no `Reply` of its own.
INTERRUPTED_REPLY = Reply("This answer is interrupted by a scripted fault before it ends.")

#: Anything a script can hold.
Step: TypeAlias = Reply | Fault


def rate_limited(retry_after: str | float | None = "1", *, message: str | None = None) -> HTTPError:
    """Return a 429 with an optional ``retry-after`` header (seconds, or an HTTP date)."""
    headers = {} if retry_after is None else {"retry-after": str(retry_after)}
    return HTTPError(429, headers=headers, message=message)


def server_error(status: int = 500, *, message: str | None = None) -> HTTPError:
    """Return a 5xx server error (500 by default)."""
    return HTTPError(status, message=message)


def overloaded(status: int = 529, *, message: str | None = None) -> HTTPError:
    """Return an "overloaded" error: Anthropic's 529 ``overloaded_error`` by default."""
    return HTTPError(status, message=message)


def unauthorized(*, message: str | None = None) -> HTTPError:
    """Return a 401 invalid-API-key error."""
    return HTTPError(401, message=message, code="invalid_api_key")


def not_found(*, message: str | None = None) -> HTTPError:
    """Return a 404 "model not found" error."""
    return HTTPError(404, message=message, code="model_not_found")


def context_length_exceeded(*, message: str | None = None) -> HTTPError:
    """Return the provider's 400 "prompt too long" error.

    OpenAI: code ``context_length_exceeded``; Anthropic: ``invalid_request_error`` whose
    message starts with "prompt is too long".
    """
    return HTTPError(400, message=message, code="context_length_exceeded")
