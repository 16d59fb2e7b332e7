"""What every wire format shares: the exchange being answered, stream frames, token estimates.

A wire format (OpenAI chat completions, Anthropic messages) turns a `Reply` into a JSON
body or a list of SSE frames, and a fault into a provider-correct error. The server then
applies timing and faults to those frames without knowing the protocol.
"""

from __future__ import annotations

import enum
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ._log import ProtocolName
from ._steps import HTTPError, Reply, StreamErrorEvent


class FrameKind(enum.Enum):
    """What a stream frame carries, which decides where faults may strike."""

    STRUCTURE = "structure"
    """Framing before, between or around content (message start, block start/stop, ping)."""
    CONTENT = "content"
    """A content delta: a text fragment or a tool-call fragment. Faults count these."""
    FINISH = "finish"
    """The finish reason, final usage and end-of-stream marker. Faults strike before these."""


@dataclass(frozen=True)
class Frame:
    """One SSE event, already encoded."""

    data: bytes
    kind: FrameKind


@dataclass(frozen=True)
class Exchange:
    """The request being answered.

    Attributes:
        protocol: Which protocol the request spoke.
        model: The model (or Azure deployment) it is scripted under.
        body: The parsed JSON request body.
        request_id: The id sent back in the request-id header.
    """

    protocol: ProtocolName
    model: str
    body: Mapping[str, Any]
    request_id: str

    @property
    def stream(self) -> bool:
        """Whether the client asked for an SSE stream."""
        return bool(self.body.get("stream"))


class WireFormat(Protocol):
    """How one provider spells replies and errors."""

    request_id_header: str

    def validate(self, body: Mapping[str, Any]) -> str | None:
        """Return an error message if ``body`` is not a plausible request, else ``None``."""
        ...

    def error_body(self, error: HTTPError, model: str | None) -> object:
        """Return the JSON error body for ``error`` (``error.body`` wins if set)."""
        ...

    def completion(self, reply: Reply, exchange: Exchange) -> object:
        """Return the non-streaming JSON response body."""
        ...

    def stream_frames(self, reply: Reply, exchange: Exchange) -> list[Frame]:
        """Return every SSE frame of the streamed reply, in order."""
        ...

    def stream_error_frame(self, fault: StreamErrorEvent) -> bytes:
        """Return the in-band SSE error event for ``fault``."""
        ...

    def stream_error_as_http(self, fault: StreamErrorEvent) -> HTTPError:
        """Return the HTTP error a non-streaming request gets for ``fault``."""
        ...

    def malformed_frame(self, text: str) -> bytes:
        """Return an SSE event whose data is the broken JSON ``text``."""
        ...

    def ping_frame(self) -> bytes:
        """Return the SSE event that keeps a quiet stream alive."""
        ...


def sse(data: object, event: str | None = None) -> bytes:
    """Encode one server-sent event; ``data`` is JSON-encoded unless it is a string."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


def pieces(text: str, size: int) -> list[str]:
    """Split ``text`` into consecutive pieces of at most ``size`` characters."""
    return [text[start : start + size] for start in range(0, len(text), size)]


def new_id(prefix: str, length: int = 24) -> str:
    """Return a random provider-style id such as ``chatcmpl-...`` or ``msg_...``."""
    return prefix + uuid.uuid4().hex[:length]


def estimate_tokens(text: str) -> int:
    """Estimate a token count: about four characters per token, at least one for any text."""
    return math.ceil(len(text) / 4) if text else 0


# Binary payloads (base64 images, audio, documents: a content part's ``data`` or
# ``file_data``, any data URL) and thinking signatures are not text: left out of the estimate.
_PAYLOAD_KEYS = frozenset(("data", "file_data", "signature"))


def _payload(key: object, item: object) -> bool:
    return isinstance(item, str) and (key in _PAYLOAD_KEYS or item.startswith("data:"))


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [
            text
            for key, item in value.items()
            if not _payload(key, item)
            for text in _strings(item)
        ]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    return []


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """Estimate the prompt tokens of a request from its messages, system prompt and tools."""
    parts = (body.get("messages"), body.get("system"), body.get("tools"))
    return max(1, estimate_tokens("".join(text for part in parts for text in _strings(part))))


def usage_of(reply: Reply, body: Mapping[str, Any]) -> tuple[int, int]:
    """Return ``(prompt_tokens, completion_tokens)``: scripted, or estimated."""
    if reply.usage is not None:
        return reply.usage
    generated = reply.text + "".join(call.name + call.arguments_json() for call in reply.tool_calls)
    return prompt_tokens(body), max(1, estimate_tokens(generated))
