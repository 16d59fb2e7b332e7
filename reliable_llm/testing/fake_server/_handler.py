"""Serving one connection: parsing requests, routing, logging, and answering from the script."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import Any

from ._anthropic_wire import AnthropicWire
from ._http import HTTPParseError, HTTPRequest, full_response, json_bytes, read_request
from ._log import ProtocolName, RecordedRequest, RequestLog
from ._openai_wire import OpenAIWire
from ._playback import Connection, play, send_error
from ._script import ScriptBook
from ._steps import HTTPError
from ._wire import Exchange, WireFormat, new_id

_logger = logging.getLogger(__name__)

_AZURE_PATH = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/chat/completions/?$")
_ROUTES: dict[str, tuple[ProtocolName, WireFormat]] = {
    "/v1/chat/completions": ("openai", OpenAIWire()),
    "/v1/messages": ("anthropic", AnthropicWire()),
}
_AZURE_WIRE = OpenAIWire(require_model=False)
_HEALTH_PATHS = frozenset({"/health", "/healthz"})


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
                connection.begin_response()
                await self._answer_or_report(connection, request)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing left to answer
        finally:
            self.active_connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer_or_report(self, connection: Connection, request: HTTPRequest) -> None:
        try:
            await self._answer(connection, request)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            raise
        except Exception as exc:
            # A bug or an unserialisable script step: tell the client instead of hanging up.
            _logger.exception(
                "fake LLM server failed to answer %s %s", request.method, request.path
            )
            connection.keep_alive = False
            if not connection.response_started:
                body = json_bytes({"error": {"message": f"fake server error: {exc!r}"}})
                await connection.send(full_response(500, body, keep_alive=False))

    async def _answer(self, connection: Connection, request: HTTPRequest) -> None:
        if request.path in _HEALTH_PATHS and request.method == "GET":
            await connection.send(full_response(200, json_bytes({"status": "ok"})))
            return
        protocol, wire, model = _route(request)
        body = _parse_body(request.body)
        if model is None and body is not None and isinstance(body.get("model"), str):
            model = body["model"]
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
            model=model,
            protocol=protocol,
        )
        self._log.append(recorded)
        if protocol is None or wire is None:
            await _send_unknown_path(connection, request)
            return
        request_id = new_id("req_")
        if request.method != "POST":
            error = HTTPError(405, message=f"Method {request.method} not allowed; use POST.")
            await send_error(connection, wire, error, model, request_id)
            return
        if protocol == "azure" and not request.query.get("api-version"):
            error = HTTPError(404, body={"error": {"code": "404", "message": "Resource not found"}})
            await send_error(connection, wire, error, model, request_id)
            return
        if body is None:
            message = "We could not parse the JSON body of your request: expected a JSON object."
            await send_error(connection, wire, HTTPError(400, message=message), model, request_id)
            return
        problem = wire.validate(body)
        if problem is not None or model is None:
            error = HTTPError(400, message=problem or "missing model")
            await send_error(connection, wire, error, model, request_id)
            return
        exchange = Exchange(protocol=protocol, model=model, body=body, request_id=request_id)
        await play(connection, wire, exchange, self._book.next_step(model, recorded))


def _route(request: HTTPRequest) -> tuple[ProtocolName | None, WireFormat | None, str | None]:
    """Return the protocol, wire format and (for Azure) deployment a path belongs to."""
    path = request.path.rstrip("/")
    if path in _ROUTES:
        protocol, wire = _ROUTES[path]
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
    """Send a JSON 404, in Anthropic's shape if the client speaks Anthropic."""
    wire: WireFormat = AnthropicWire() if "anthropic-version" in request.headers else OpenAIWire()
    message = f"Unknown request URL: {request.method} {request.path}."
    error = HTTPError(404, message=message, code="unknown_url")
    await send_error(connection, wire, error, None, new_id("req_"))
