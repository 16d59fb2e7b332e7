"""Playing one scripted step onto a connection: replies, errors, streams and faults.

Everything here runs on the server's event loop; delays are ``asyncio.sleep`` so one slow
or hanging request never holds up another connection.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

from ._http import LAST_CHUNK, chunk, full_response, json_bytes, response_head
from ._slow import SlowWire
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
from ._transcript import Transcript
from ._wire import Exchange, FrameKind, WireFormat


class Connection:
    """One client connection: its streams, and whether it may be reused."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.keep_alive = True
        self.response_started = False
        #: How the current response is slowed down, if it is.
        self.slow: SlowWire | None = None
        self._head_pending = True
        self._trickled = False

    def begin_response(self) -> None:
        """Forget the previous response's state before answering the next request."""
        self.response_started = False
        self.slow = None
        self._head_pending = True
        self._trickled = False

    async def send(self, data: bytes) -> None:
        """Write ``data`` (slowed down as `slow` says) and wait until the buffer drains."""
        self.response_started = True
        slow = self.slow
        if slow is None:
            await self._write(data)
            return
        if self._head_pending:
            self._head_pending = False
            head_end = data.find(b"\r\n\r\n") + 4
            head, data = data[:head_end], data[head_end:]
            status_end = head.find(b"\r\n") + 2
            await self._write(head[:status_end])
            if slow.header_delay:
                await asyncio.sleep(slow.header_delay)
            await self._write(head[status_end:])
        step = slow.trickle_bytes or len(data)
        for start in range(0, len(data), step or 1):
            if self._trickled and slow.trickle_interval:
                await asyncio.sleep(slow.trickle_interval)
            await self._write(data[start : start + step])
            self._trickled = bool(slow.trickle_bytes)

    async def _write(self, data: bytes) -> None:
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


async def send_error(
    connection: Connection, wire: WireFormat, error: HTTPError, model: str | None, request_id: str
) -> None:
    """Send ``error`` as ``wire`` spells it, with its extra headers."""
    body = wire.error_body(error, model)
    payload = body.encode() if isinstance(body, str) else json_bytes(body)
    headers = [(wire.request_id_header, request_id), *error.headers.items()]
    response = full_response(error.status, payload, headers, keep_alive=connection.keep_alive)
    await connection.send(response)


async def play(connection: Connection, wire: WireFormat, exchange: Exchange, step: Step) -> None:
    """Answer ``exchange`` as ``step`` says."""
    if isinstance(step, Reply):
        if step.latency:
            await asyncio.sleep(step.latency)
        if exchange.stream:
            await _stream(connection, wire, exchange, step, None)
        else:
            await _send_json(connection, wire, exchange, wire.completion(step, exchange))
    elif isinstance(step, HTTPError):
        await send_error(connection, wire, step, exchange.model, exchange.request_id)
    elif isinstance(step, ResetConnection):
        connection.reset()
    elif isinstance(step, MalformedJSON):
        if exchange.stream:
            await connection.send(_stream_head(connection, wire, exchange, chunked=True))
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
            await send_error(connection, wire, error, exchange.model, exchange.request_id)
    elif isinstance(step, Transcript):
        await _replay(connection, wire, exchange, step)
    elif isinstance(step, SlowWire):
        await _play_slow(connection, wire, exchange, step)
    elif isinstance(step, StreamCut):
        if exchange.stream:
            await _stream(connection, wire, exchange, step.reply or INTERRUPTED_REPLY, step)
        else:
            await _send_truncated_json(connection, wire, exchange, step.reply or INTERRUPTED_REPLY)
    else:  # pragma: no cover - ScriptBook only admits the types above
        raise TypeError(f"unknown step {step!r}")


async def _play_slow(
    connection: Connection, wire: WireFormat, exchange: Exchange, step: SlowWire
) -> None:
    reply = step.answer
    if reply.latency:
        await asyncio.sleep(reply.latency)
    connection.slow = step
    if exchange.stream:
        await _stream(connection, wire, exchange, reply, None, step)
    else:
        if step.preamble_seconds:
            await asyncio.sleep(step.preamble_seconds)
        await _send_json(connection, wire, exchange, wire.completion(reply, exchange))


async def _replay(
    connection: Connection, wire: WireFormat, exchange: Exchange, step: Transcript
) -> None:
    headers = [(wire.request_id_header, exchange.request_id), *step.headers.items()]
    if not step.is_sse:
        content_type = step.content_type or "application/json"
        response = full_response(
            step.status,
            step.body,
            headers,
            content_type=content_type,
            keep_alive=connection.keep_alive,
        )
        await connection.send(response)
        return
    head = [
        ("content-type", step.content_type or "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
        ("transfer-encoding", "chunked"),
        ("connection", "keep-alive" if connection.keep_alive else "close"),
        *headers,
    ]
    await connection.send(response_head(step.status, head))
    for event in step.events():
        await connection.send(chunk(event))
    await connection.send(LAST_CHUNK)


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
    connection.keep_alive = False
    response = full_response(200, payload, headers, keep_alive=False)
    await connection.send(response[: len(response) - len(payload) // 2])


def _stream_head(
    connection: Connection, wire: WireFormat, exchange: Exchange, *, chunked: bool
) -> bytes:
    headers = [
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
        (wire.request_id_header, exchange.request_id),
    ]
    if chunked:
        headers.append(("transfer-encoding", "chunked"))
    else:
        connection.keep_alive = False  # the body ends where the connection does
    headers.append(("connection", "keep-alive" if connection.keep_alive else "close"))
    return response_head(200, headers)


def _as_is(data: bytes) -> bytes:
    return data


async def _preamble(
    connection: Connection,
    count: int,
    frame: bytes,
    gap: float,
    frame_bytes: Callable[[bytes], bytes],
) -> None:
    """Send ``frame`` ``count`` times, each after ``gap`` seconds."""
    for _ in range(count):
        if gap:
            await asyncio.sleep(gap)
        await connection.send(frame_bytes(frame))


async def _stream(
    connection: Connection,
    wire: WireFormat,
    exchange: Exchange,
    reply: Reply,
    fault: Hang | StreamErrorEvent | StreamCut | None,
    slow: SlowWire | None = None,
) -> None:
    """Stream ``reply``; if ``fault`` is given, it strikes after its ``after_chunks`` deltas.

    With fewer deltas than ``after_chunks`` the fault strikes just before the finish.
    ``slow`` adds its keep-alive comments and pings (the connection trickles the bytes).
    """
    chunked = not (isinstance(fault, StreamCut) and not fault.incomplete_transfer)
    frame_bytes = chunk if chunked else _as_is
    limit = -1 if fault is None else fault.after_chunks or 0
    await connection.send(_stream_head(connection, wire, exchange, chunked=chunked))
    if slow is not None:
        await _preamble(connection, slow.keep_alives, slow.comment_frame, slow.gap, frame_bytes)
    pings_due = slow is not None and slow.pings > 0
    sent = 0
    for position, frame in enumerate(wire.stream_frames(reply, exchange)):
        is_content = frame.kind is FrameKind.CONTENT
        if fault is not None and (frame.kind is FrameKind.FINISH or (is_content and sent == limit)):
            break
        if is_content and sent and reply.chunk_interval:
            await asyncio.sleep(reply.chunk_interval)
        if slow is not None:
            if pings_due and frame.kind is not FrameKind.STRUCTURE:
                pings_due = False
                await _preamble(connection, slow.pings, wire.ping_frame(), slow.gap, frame_bytes)
            if slow.keep_alive_between and position:
                await connection.send(frame_bytes(slow.comment_frame))
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
