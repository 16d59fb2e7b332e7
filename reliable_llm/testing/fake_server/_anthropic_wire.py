"""The Anthropic messages wire format (``POST /v1/messages``)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from ._content_check import anthropic_content_problem
from ._steps import HTTPError, Reply, StreamErrorEvent
from ._wire import Exchange, Frame, FrameKind, new_id, pieces, sse, usage_of

#: Default ``(type, message)`` of an error body, by HTTP status.
_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. Please try again later.",
    ),
    500: ("api_error", "Internal server error"),
    503: ("overloaded_error", "Overloaded"),
    529: ("overloaded_error", "Overloaded"),
}

#: Default message for OpenAI-style error codes that have an Anthropic counterpart.
_BY_CODE = {
    "context_length_exceeded": "prompt is too long: 200001 tokens > 200000 maximum",
}

#: HTTP status Anthropic uses for an error type (for a non-streamed `StreamErrorEvent`).
_STATUS_OF_TYPE = {
    "overloaded_error": 529,
    "api_error": 500,
    "rate_limit_error": 429,
    "invalid_request_error": 400,
}


class AnthropicWire:
    """Renders replies and errors as ``/v1/messages`` does."""

    request_id_header = "request-id"

    def validate(self, body: Mapping[str, Any]) -> str | None:
        """Return an error message if ``body`` lacks a model, messages or max_tokens."""
        for name, kind in (("model", str), ("messages", list), ("max_tokens", int)):
            if not isinstance(body.get(name), kind):
                return f"{name}: Field required"
        return anthropic_content_problem(body)

    def error_body(self, error: HTTPError, model: str | None) -> object:
        """Return ``{"type": "error", "error": {"type", "message"}}`` for ``error``."""
        if error.body is not None:
            return error.body
        default_status = 500 if error.status >= 500 else 400
        kind, message = _BY_STATUS.get(error.status, _BY_STATUS[default_status])
        message = error.message or _BY_CODE.get(error.code or "", message)
        return {
            "type": "error",
            "error": {"type": kind, "message": message.replace("{model}", model or "unknown")},
            "request_id": new_id("req_"),
        }

    def completion(self, reply: Reply, exchange: Exchange) -> object:
        """Return a ``message`` object with ``text`` and ``tool_use`` content blocks."""
        prompt, completion = usage_of(reply, exchange.body)
        content: list[dict[str, object]] = []
        if reply.reasoning:
            content.append(
                {"type": "thinking", "thinking": reply.reasoning, "signature": _signature(reply)}
            )
        if reply.text or not reply.tool_calls:
            content.append({"type": "text", "text": reply.text})
        content += [
            {
                "type": "tool_use",
                "id": call.id or new_id("toolu_"),
                "name": call.name,
                "input": call.arguments_object(),
            }
            for call in reply.tool_calls
        ]
        return {
            **self._message_shell(exchange),
            "content": content,
            "stop_reason": reply.anthropic_stop_reason(),
            "usage": _usage(prompt, completion, reply),
        }

    def stream_frames(self, reply: Reply, exchange: Exchange) -> list[Frame]:
        """Return the event sequence the official SDK's stream accumulator expects.

        ``message_start``, then per block ``content_block_start`` (a ``ping`` after the
        first), its deltas and ``content_block_stop``, then ``message_delta`` and
        ``message_stop``.
        """
        prompt, completion = usage_of(reply, exchange.body)
        start = {
            **self._message_shell(exchange),
            "content": [],
            "stop_reason": None,
            "usage": _usage(prompt, 1, reply),
        }
        frames = [Frame(_event("message_start", message=start), FrameKind.STRUCTURE)]
        blocks: list[tuple[dict[str, object], list[dict[str, object]]]] = []
        if reply.reasoning:
            thinking_deltas: list[dict[str, object]] = [
                {"type": "thinking_delta", "thinking": piece}
                for piece in pieces(reply.reasoning, reply.chunk_size)
            ]
            thinking_deltas.append({"type": "signature_delta", "signature": _signature(reply)})
            blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, thinking_deltas))
        if reply.text or not reply.tool_calls:
            text_deltas: list[dict[str, object]] = [
                {"type": "text_delta", "text": piece}
                for piece in pieces(reply.text, reply.chunk_size)
            ]
            blocks.append(({"type": "text", "text": ""}, text_deltas))
        for call in reply.tool_calls:
            block: dict[str, object] = {
                "type": "tool_use",
                "id": call.id or new_id("toolu_"),
                "name": call.name,
                "input": {},
            }
            json_deltas: list[dict[str, object]] = [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in pieces(call.arguments_json(), reply.chunk_size)
            ]
            blocks.append((block, json_deltas))
        for index, (block, deltas) in enumerate(blocks):
            opening = _event("content_block_start", index=index, content_block=block)
            frames.append(Frame(opening, FrameKind.STRUCTURE))
            if index == 0:
                frames.append(Frame(_event("ping"), FrameKind.STRUCTURE))
            frames += [
                Frame(_event("content_block_delta", index=index, delta=delta), FrameKind.CONTENT)
                for delta in deltas
            ]
            frames.append(Frame(_event("content_block_stop", index=index), FrameKind.STRUCTURE))
        delta = {"stop_reason": reply.anthropic_stop_reason(), "stop_sequence": None}
        usage = {"output_tokens": completion}
        frames.append(Frame(_event("message_delta", delta=delta, usage=usage), FrameKind.FINISH))
        frames.append(Frame(_event("message_stop"), FrameKind.FINISH))
        return frames

    def stream_error_frame(self, fault: StreamErrorEvent) -> bytes:
        """Return ``event: error`` carrying an ``overloaded_error`` (or the fault's type)."""
        return sse(self.error_body(self.stream_error_as_http(fault), None), event="error")

    def stream_error_as_http(self, fault: StreamErrorEvent) -> HTTPError:
        """Return the HTTP error of the fault's type: 529 for ``overloaded_error``."""
        kind = fault.error_type or "overloaded_error"
        status = _STATUS_OF_TYPE.get(kind, 500)
        message = fault.message or (
            "Overloaded" if kind == "overloaded_error" else "Internal server error"
        )
        body = {"type": "error", "error": {"type": kind, "message": message}}
        return HTTPError(status, body=body)

    def malformed_frame(self, text: str) -> bytes:
        """Return a ``content_block_delta`` event whose data is ``text``."""
        return sse(text, event="content_block_delta")

    def ping_frame(self) -> bytes:
        """Return ``event: ping`` with data ``{"type": "ping"}``."""
        return _event("ping")

    @staticmethod
    def _message_shell(exchange: Exchange) -> dict[str, object]:
        return {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": exchange.body.get("model") or exchange.model,
            "stop_sequence": None,
        }


def _event(kind: str, **fields: object) -> bytes:
    return sse({"type": kind, **fields}, event=kind)


def _usage(prompt: int, completion: int, reply: Reply) -> dict[str, object]:
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "cache_creation_input_tokens": reply.cache_creation_tokens,
        "cache_read_input_tokens": reply.cache_read_tokens,
    }


def _signature(reply: Reply) -> str:
    """The thinking block's signature: scripted, or a stable made-up one."""
    if reply.signature is not None:
        return reply.signature
    return "fake-signature-" + hashlib.sha256(reply.reasoning.encode()).hexdigest()[:32]
