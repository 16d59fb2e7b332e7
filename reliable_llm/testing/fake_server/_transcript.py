"""Replaying a recorded response byte for byte: what a real server sent, not what we render.

A `Transcript` step sends a stored body unchanged (a JSON document, or an SSE stream event
by event), so tests can check our decoders and the official SDKs against what vLLM, Ollama,
OpenRouter, Azure or Anthropic really send::

    server.script("gpt-4o", Transcript.from_file("tests/wire/transcripts/openrouter/x.sse"))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._steps import Fault

__all__ = ["Transcript"]

_SSE_STARTS = (b"data:", b"event:", b":", b"id:", b"retry:")


@dataclass(frozen=True)
class Transcript(Fault):
    """Send ``body`` exactly as recorded, whatever the request asked for.

    Attributes:
        body: The response body, byte for byte.
        status: The HTTP status.
        headers: Extra response headers (e.g. ``{"x-should-retry": "false"}``).
        content_type: ``None`` detects it: ``text/event-stream`` for a body that starts
            like SSE (``data:``, ``event:``, a ``:`` comment), else ``application/json``.

    An SSE body is sent with chunked transfer encoding, one chunk per event, so clients
    see events arrive one by one; any other body is sent with a ``Content-Length``.

    Raises:
        ValueError: If ``status`` is not a valid HTTP status code.
    """

    body: bytes
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"Transcript status must be an HTTP status, got {self.status}")

    @classmethod
    def from_file(
        cls, path: str | Path, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Transcript:
        """Load a recorded body from ``path`` (read as bytes, unchanged).

        Raises:
            OSError: If the file cannot be read.
        """
        return cls(Path(path).read_bytes(), status=status, headers=dict(headers or {}))

    @property
    def is_sse(self) -> bool:
        """Whether the body is sent as a server-sent event stream."""
        if self.content_type is not None:
            return self.content_type.startswith("text/event-stream")
        return self.body.lstrip().startswith(_SSE_STARTS)

    def events(self) -> list[bytes]:
        """The body split after each blank line, so that joined they are the body again."""
        parts = self.body.split(b"\n\n")
        events = [part + b"\n\n" for part in parts[:-1]]
        if parts[-1]:
            events.append(parts[-1])
        return events
