"""A minimal HTTP/1.1 server-side codec on asyncio streams.

Just enough for LLM SDK clients: request line and headers, ``Content-Length`` and chunked
request bodies, keep-alive, and responses with a fixed length, chunked transfer encoding
or a body delimited by closing the connection.
"""

from __future__ import annotations

import asyncio
import http
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

#: Largest request body accepted; LLM requests are far smaller.
MAX_BODY_BYTES = 32 * 1024 * 1024


class HTTPParseError(Exception):
    """The client sent something that is not a request we can parse."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class HTTPRequest:
    """A parsed request.

    Attributes:
        method: Upper-case method.
        path: The percent-decoded path, without the query string.
        query: Query parameters (last value wins).
        version: ``"HTTP/1.1"`` or ``"HTTP/1.0"``.
        headers: Header names lower-cased; repeated headers joined with ``", "``.
        body: The raw body bytes.
    """

    method: str
    path: str
    query: Mapping[str, str]
    version: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        """Whether the client allows the connection to be reused after this request."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


async def read_request(reader: asyncio.StreamReader) -> HTTPRequest | None:
    """Read one request from ``reader``.

    Returns:
        The request, or ``None`` if the client closed the connection between requests.

    Raises:
        HTTPParseError: On a malformed or oversized request.
        asyncio.IncompleteReadError: If the connection closes mid-request.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise
    except asyncio.LimitOverrunError as exc:
        raise HTTPParseError(431, "request header fields too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError as exc:
        raise HTTPParseError(400, f"bad request line {lines[0]!r}") from exc
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HTTPParseError(505, f"unsupported version {version!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise HTTPParseError(400, f"bad header line {line!r}")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    body = await _read_body(reader, headers)
    url = urlsplit(target)
    return HTTPRequest(
        method=method.upper(),
        path=unquote(url.path) or "/",
        query=dict(parse_qsl(url.query, keep_blank_values=True)),
        version=version,
        headers=headers,
        body=body,
    )


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    raw_length = headers.get("content-length")
    if raw_length is None:
        return b""
    try:
        length = int(raw_length)
    except ValueError as exc:
        raise HTTPParseError(400, f"bad content-length {raw_length!r}") from exc
    if not 0 <= length <= MAX_BODY_BYTES:
        raise HTTPParseError(413, "request body too large")
    return await reader.readexactly(length)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError as exc:
            raise HTTPParseError(400, "bad chunk size") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers are read and ignored
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise HTTPParseError(413, "request body too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def response_head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    """Return the status line and headers of a response, ending with the blank line."""
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Site Overloaded" if status == 529 else "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def full_response(
    status: int,
    body: bytes,
    headers: Iterable[tuple[str, str]] = (),
    *,
    content_type: str = "application/json",
    keep_alive: bool = True,
) -> bytes:
    """Return a complete response with a ``Content-Length`` body."""
    all_headers = [
        ("content-type", content_type),
        ("content-length", str(len(body))),
        ("connection", "keep-alive" if keep_alive else "close"),
        *headers,
    ]
    return response_head(status, all_headers) + body


def json_bytes(value: object) -> bytes:
    """Serialise ``value`` as compact UTF-8 JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def chunk(data: bytes) -> bytes:
    """Frame ``data`` as one chunk of a chunked transfer-encoded body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


#: The zero-length chunk that ends a chunked body.
LAST_CHUNK = b"0\r\n\r\n"
