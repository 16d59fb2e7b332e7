"""Serving one connection: routing, request logging and playing the scripted step.

Everything here runs on the server's event loop; delays are ``asyncio.sleep`` so one slow
or hanging request never holds up another connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
from typing import Any

from ._anthropic_wire import AnthropicWire
from ._http import (
    LAST_CHUNK,
    HTTPParseError,
    HTTPRequest,
    chunk,
    full_response,
    json_bytes,
    read_request,
    response_head,
)
from ._log import ProtocolName, RecordedRequest, RequestLog
from ._openai_wire import OpenAIWire
from ._script import ScriptBook
from ._steps import (
    INTERRUPTED_REPLY,
    Hang,
    HTTPError,
    MalformedJSON,
    Reply,
    ResetConnection,
    Step,
    StreamCut,
    StreamErrorEvent,
)
from ._wire import Exchange, FrameKind, WireFormat, new_id

_AZURE_PATH = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/chat/completions/?$")
_ROUTES: dict[str, tuple[ProtocolName, WireFormat]] = {
    "/v1/chat/completions": ("openai", OpenAIWire()),
    "/v1/messages": ("anthropic", AnthropicWire()),
}
_AZURE_WIRE = OpenAIWire(require_model=False)
_HEALTH_PATHS = frozenset({"/health", "/healthz"})


class Connection:
    """One client connection: its streams and whether it may be reused."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.keep_alive = True

    async def send(self, data: bytes) -> None:
        """Write ``data`` and wait until the transport buffer drains."""
        self.writer.write(data)
        await self.writer.drain()

    async def hold(self, seconds: float) -> None:
        """Wait ``seconds`` without answering, ending early if the client disconnects."""
        self.keep_alive = False  # the request is abandoned, whatever follows
        sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
        eof = asyncio.ensure_future(self.reader.read(1))
        try:
            await asyncio.wait({sleeper, eof}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, eof):
                task.cancel()
            await asyncio.gather(sleeper, eof, return_exceptions=True)

    def reset(self) -> None:
        """Abort the connection with a TCP RST instead of an orderly close."""
        self.keep_alive = False
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


class Handler:
    """Serves connections from a script book, recording every request in a log."""

    def __init__(self, book: ScriptBook, log: RequestLog) -> None:
        self._book = book
        self._log = log
        self.active_connections = 0
        self.peak_connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until either side closes it."""
        self.active_connections += 1
        self.peak_connections = max(self.peak_connections, self.active_connections)
        connection = Connection(reader, writer)
        try:
            while connection.keep_alive:
                try:
                    request = await read_request(reader)
                except HTTPParseError as exc:
                    body = json_bytes({"error": {"message": str(exc), "type": "invalid_request"}})
                    await connection.send(full_response(exc.status, body, keep_alive=False))
                    break
                if request is None:
                    break
                connection.keep_alive = request.keep_alive
                await self._answer(connection, request)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing left to answer
        finally:
            self.active_connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, connection: Connection, request: HTTPRequest) -> None:
        if request.path in _HEALTH_PATHS and request.method == "GET":
            await connection.send(full_response(200, json_bytes({"status": "ok"})))
            return
        protocol, wire, model = _route(request)
        body = _parse_body(request.body)
        if model is None and body is not None and isinstance(body.get("model"), str):
            model = body["model"]
        self._log.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
                model=model,
                protocol=protocol,
            )
        )
        if protocol is None or wire is None:
            await _send_unknown_path(connection, request)
            return
        request_id = new_id("req_")
        if request.method != "POST":
            error = HTTPError(405, message=f"Method {request.method} not allowed; use POST.")
            await _send_error(connection, wire, error, model, request_id)
            return
        if protocol == "azure" and not request.query.get("api-version"):
            error = HTTPError(404, body={"error": {"code": "404", "message": "Resource not found"}})
            await _send_error(connection, wire, error, model, request_id)
            return
        if body is None:
            message = "We could not parse the JSON body of your request: expected a JSON object."
            await _send_error(connection, wire, HTTPError(400, message=message), model, request_id)
            return
        problem = wire.validate(body)
        if problem is not None or model is None:
            error = HTTPError(400, message=problem or "missing model")
            await _send_error(connection, wire, error, model, request_id)
            return
        exchange = Exchange(protocol=protocol, model=model, body=body, request_id=request_id)
        await _play(connection, wire, exchange, self._book.next_step(model))


def _route(request: HTTPRequest) -> tuple[ProtocolName | None, WireFormat | None, str | None]:
    if request.path.rstrip("/") in _ROUTES:
        protocol, wire = _ROUTES[request.path.rstrip("/")]
        return protocol, wire, None
    match = _AZURE_PATH.match(request.path)
    if match:
        return "azure", _AZURE_WIRE, match["deployment"]
    return None, None, None


def _parse_body(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def _send_unknown_path(connection: Connection, request: HTTPRequest) -> None:
    wire: WireFormat = AnthropicWire() if "anthropic-version" in request.headers else OpenAIWire()
    message = f"Unknown request URL: {request.method} {request.path}."
    error = HTTPError(404, message=message, code="unknown_url")
    await _send_error(connection, wire, error, None, new_id("req_"))


async def _send_error(
    connection: Connection, wire: WireFormat, error: HTTPError, model: str | None, request_id: str
) -> None:
    body = wire.error_body(error, model)
    payload = body.encode() if isinstance(body, str) else json_bytes(body)
    headers = [(wire.request_id_header, request_id), *error.headers.items()]
    response = full_response(error.status, payload, headers, keep_alive=connection.keep_alive)
    await connection.send(response)


async def _play(connection: Connection, wire: WireFormat, exchange: Exchange, step: Step) -> None:
    """Answer ``exchange`` as ``step`` says."""
    if isinstance(step, Reply):
        if step.latency:
            await asyncio.sleep(step.latency)
        if exchange.stream:
            await _stream(connection, wire, exchange, step, None)
        else:
            await _send_json(connection, wire, exchange, wire.completion(step, exchange))
    elif isinstance(step, HTTPError):
        await _send_error(connection, wire, step, exchange.model, exchange.request_id)
    elif isinstance(step, ResetConnection):
        connection.reset()
    elif isinstance(step, MalformedJSON):
        if exchange.stream:
            await connection.send(_stream_head(wire, exchange, chunked=True))
            await connection.send(chunk(wire.malformed_frame(step.body)) + LAST_CHUNK)
        else:
            await _send_json(connection, wire, exchange, step.body)
    elif isinstance(step, Hang):
        if exchange.stream and step.after_chunks is not None:
            await _stream(connection, wire, exchange, step.reply or INTERRUPTED_REPLY, step)
        else:
            await connection.hold(step.seconds)
    elif isinstance(step, StreamErrorEvent):
        if exchange.stream:
            await _stream(connection, wire, exchange, step.reply or INTERRUPTED_REPLY, step)
        else:
            error = wire.stream_error_as_http(step)
            await _send_error(connection, wire, error, exchange.model, exchange.request_id)
    elif isinstance(step, StreamCut):
        if exchange.stream:
            await _stream(connection, wire, exchange, step.reply or INTERRUPTED_REPLY, step)
        else:
            await _send_truncated_json(connection, wire, exchange, step.reply or INTERRUPTED_REPLY)
    else:  # pragma: no cover - ScriptBook only admits the types above
        raise TypeError(f"unknown step {step!r}")


async def _send_json(
    connection: Connection, wire: WireFormat, exchange: Exchange, body: object
) -> None:
    payload = body.encode() if isinstance(body, str) else json_bytes(body)
    headers = [(wire.request_id_header, exchange.request_id)]
    await connection.send(full_response(200, payload, headers, keep_alive=connection.keep_alive))


async def _send_truncated_json(
    connection: Connection, wire: WireFormat, exchange: Exchange, reply: Reply
) -> None:
    payload = json_bytes(wire.completion(reply, exchange))
    headers = [(wire.request_id_header, exchange.request_id)]
    response = full_response(200, payload, headers, keep_alive=False)
    connection.keep_alive = False
    await connection.send(response[: len(response) - len(payload) // 2])


def _stream_head(wire: WireFormat, exchange: Exchange, *, chunked: bool) -> bytes:
    headers = [
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
        (wire.request_id_header, exchange.request_id),
    ]
    if chunked:
        headers += [("transfer-encoding", "chunked"), ("connection", "keep-alive")]
    else:
        headers.append(("connection", "close"))
    return response_head(200, headers)


async def _stream(
    connection: Connection,
    wire: WireFormat,
    exchange: Exchange,
    reply: Reply,
    fault: Hang | StreamErrorEvent | StreamCut | None,
) -> None:
    """Stream ``reply``; if ``fault`` is given, it strikes after its ``after_chunks`` deltas.

    With fewer deltas than ``after_chunks`` the fault strikes just before the finish.
    """
    chunked = not (isinstance(fault, StreamCut) and not fault.incomplete_transfer)
    frame_bytes = chunk if chunked else bytes
    limit = -1 if fault is None else fault.after_chunks or 0
    await connection.send(_stream_head(wire, exchange, chunked=chunked))
    sent = 0
    for frame in wire.stream_frames(reply, exchange):
        is_content = frame.kind is FrameKind.CONTENT
        if fault is not None and (frame.kind is FrameKind.FINISH or (is_content and sent == limit)):
            break
        if is_content and sent and reply.chunk_interval:
            await asyncio.sleep(reply.chunk_interval)
        await connection.send(frame_bytes(frame.data))
        sent += is_content
        if is_content and sent == limit:
            break
    if fault is None:
        await connection.send(LAST_CHUNK)
    elif isinstance(fault, StreamErrorEvent):
        await connection.send(chunk(wire.stream_error_frame(fault)) + LAST_CHUNK)
    elif isinstance(fault, Hang):
        await connection.hold(fault.seconds)
    else:
        connection.keep_alive = False  # StreamCut: close with the answer unfinished
