"""The OpenAI chat completions wire format (also spoken by Azure OpenAI)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ._content_check import openai_content_problem
from ._steps import HTTPError, Reply, StreamErrorEvent
from ._wire import Exchange, Frame, FrameKind, new_id, pieces, sse, usage_of

_FINGERPRINT = "fp_fake"

#: Default ``(type, code, message)`` of an error body, by HTTP status.
_BY_STATUS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", None, "You are not allowed to access this resource."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, "
        "Requested 1. Please try again in 1s.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    529: ("server_error", None, "The engine is currently overloaded, please try again later."),
}

#: Default ``(type, message)`` for error codes whose wording matters to clients.
_BY_CODE: dict[str, tuple[str, str]] = {
    "context_length_exceeded": (
        "invalid_request_error",
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130000 tokens. Please reduce the length of the messages.",
    ),
    "insufficient_quota": (
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
}


class OpenAIWire:
    """Renders replies and errors as ``/v1/chat/completions`` does."""

    request_id_header = "x-request-id"

    def __init__(self, *, require_model: bool = True) -> None:
        """Create the format; Azure passes ``require_model=False`` (the path names it)."""
        self._require_model = require_model

    def validate(self, body: Mapping[str, Any]) -> str | None:
        """Return an error message if ``body`` lacks a model or messages, else ``None``."""
        if self._require_model and not isinstance(body.get("model"), str):
            return "you must provide a model parameter"
        if not isinstance(body.get("messages"), list):
            return "Missing required parameter: 'messages'."
        return openai_content_problem(body)

    def error_body(self, error: HTTPError, model: str | None) -> object:
        """Return ``{"error": {"message", "type", "param", "code"}}`` for ``error``."""
        if error.body is not None:
            return error.body
        default_status = 500 if error.status >= 500 else 400
        kind, code, message = _BY_STATUS.get(error.status, _BY_STATUS[default_status])
        code = error.code or code
        kind, message = _BY_CODE.get(code or "", (kind, message))
        message = error.message or message
        param = "messages" if code == "context_length_exceeded" else None
        return {
            "error": {
                "message": message.replace("{model}", model or "unknown"),
                "type": kind,
                "param": param,
                "code": code,
            }
        }

    def completion(self, reply: Reply, exchange: Exchange) -> object:
        """Return a ``chat.completion`` object."""
        prompt, completion = usage_of(reply, exchange.body)
        content = reply.text if reply.text or not reply.tool_calls else None
        message: dict[str, object] = {
            "role": "assistant",
            "content": None if reply.refusal else content,
            "refusal": reply.text if reply.refusal else None,
            "annotations": [],
        }
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning  # DeepSeek's field
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or new_id("call_"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
                for call in reply.tool_calls
            ]
        return {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": exchange.body.get("model") or exchange.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.openai_finish_reason(),
                }
            ],
            "usage": _usage(prompt, completion, reply),
            "system_fingerprint": _FINGERPRINT,
        }

    def stream_frames(self, reply: Reply, exchange: Exchange) -> list[Frame]:
        """Return ``chat.completion.chunk`` events, the usage chunk if asked, and ``[DONE]``."""
        options = exchange.body.get("stream_options")
        include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
        template: dict[str, object] = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": exchange.body.get("model") or exchange.model,
            "system_fingerprint": _FINGERPRINT,
        }

        def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            extra = {"usage": None} if include_usage else {}
            return sse({**template, "choices": [choice], **extra})

        frames = [
            Frame(chunk({"role": "assistant", "content": "", "refusal": None}), FrameKind.STRUCTURE)
        ]
        frames += [
            Frame(chunk({"reasoning_content": piece}), FrameKind.CONTENT)
            for piece in pieces(reply.reasoning, reply.chunk_size)
        ]
        field = "refusal" if reply.refusal else "content"
        frames += [
            Frame(chunk({field: piece}), FrameKind.CONTENT)
            for piece in pieces(reply.text, reply.chunk_size)
        ]
        for index, call in enumerate(reply.tool_calls):
            opening = {
                "index": index,
                "id": call.id or new_id("call_"),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            frames.append(Frame(chunk({"tool_calls": [opening]}), FrameKind.CONTENT))
            frames += [
                Frame(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                    FrameKind.CONTENT,
                )
                for piece in pieces(call.arguments_json(), reply.chunk_size)
            ]
        frames.append(Frame(chunk({}, reply.openai_finish_reason()), FrameKind.FINISH))
        if include_usage:
            usage = _usage(*usage_of(reply, exchange.body), reply)
            frames.append(Frame(sse({**template, "choices": [], "usage": usage}), FrameKind.FINISH))
        frames.append(Frame(sse("[DONE]"), FrameKind.FINISH))
        return frames

    def stream_error_frame(self, fault: StreamErrorEvent) -> bytes:
        """Return ``data: {"error": {...}}``, the way OpenAI reports a mid-stream failure."""
        error = self.error_body(self.stream_error_as_http(fault), None)
        return sse(error)

    def stream_error_as_http(self, fault: StreamErrorEvent) -> HTTPError:
        """Return a 500 ``server_error`` carrying the fault's message."""
        if fault.error_type is None:
            return HTTPError(500, message=fault.message)
        message = fault.message or _BY_STATUS[500][2]
        body = {
            "error": {"message": message, "type": fault.error_type, "param": None, "code": None}
        }
        return HTTPError(500, body=body)

    def malformed_frame(self, text: str) -> bytes:
        """Return ``data: <text>``."""
        return sse(text)

    def ping_frame(self) -> bytes:
        """Return an SSE comment: the protocol has no ping event, so servers send comments."""
        return b": ping\n\n"


def _usage(prompt: int, completion: int, reply: Reply) -> dict[str, object]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": reply.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reply.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
