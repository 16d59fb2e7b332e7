"""The request log: every HTTP request the fake server received, in arrival order."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

#: The wire protocol a request spoke.
ProtocolName: TypeAlias = Literal["openai", "azure", "anthropic"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it.

    Attributes:
        method: The HTTP method, e.g. ``"POST"``.
        path: The URL path without the query string.
        query: The query parameters (last value wins).
        headers: The request headers, names lower-cased.
        body: The parsed JSON object body, or ``None`` if there was none or it was invalid.
        model: The model the request was scripted under (the Azure deployment name for
            Azure), or ``None`` if it had none.
        protocol: ``"openai"``, ``"azure"`` or ``"anthropic"``; ``None`` for other paths.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: dict[str, Any] | None
    model: str | None
    protocol: ProtocolName | None

    @property
    def stream(self) -> bool:
        """Whether the request asked for a streamed (SSE) response."""
        return bool(self.body is not None and self.body.get("stream"))


class RequestLog:
    """Thread-safe, append-only list of `RecordedRequest`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[RecordedRequest] = []

    def append(self, request: RecordedRequest) -> None:
        """Record ``request``."""
        with self._lock:
            self._entries.append(request)

    def snapshot(self) -> list[RecordedRequest]:
        """Return a copy of the log, oldest first."""
        with self._lock:
            return list(self._entries)

    def count(self, model: str | None = None) -> int:
        """Return how many requests were received (for ``model`` only, if given)."""
        with self._lock:
            if model is None:
                return len(self._entries)
            return sum(1 for entry in self._entries if entry.model == model)

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._entries.clear()
