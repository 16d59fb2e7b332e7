"""The OpenAI Chat Completions protocol: requests out, responses and stream chunks in.

Pure functions between our types and the wire / SDK objects, used by every OpenAI-shaped
provider (OpenAI, Azure OpenAI and the OpenAI-compatible presets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reliable_llm._content import AudioPart, FilePart, ImagePart, Part, ReasoningPart, TextPart
from reliable_llm._errors import InvalidRequestError, ProviderConnectionError
from reliable_llm._request import NEVER_KEYED
from reliable_llm._stream import ToolCallAssembler
from reliable_llm._types import (
    ChatRequest,
    ChatResponse,
    Message,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from reliable_llm.providers._outcome import REFUSAL, check_answer, in_band_error

__all__ = [
    "PASSTHROUGH_EXCLUDED",
    "StreamState",
    "build_params",
    "finish_reason",
    "parse_completion",
    "to_usage",
]

#: ``ChatRequest.extra`` keys that never go upstream: secrets and transport settings we own.
PASSTHROUGH_EXCLUDED = NEVER_KEYED  # the one set: never sent as body fields, never keyed

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
    # DeepSeek: the answer was cut short for lack of server resources, an upstream failure.
    "insufficient_system_resource": "error",
    # Spellings of OpenAI-compatible servers for the same ends.
    "eos": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "end_turn": "stop",
    "max_tokens": "length",
    "model_length": "length",
    "tool_use": "tool_calls",
}


def finish_reason(value: str | None) -> str:
    """An OpenAI finish reason normalized to stop / length / tool_calls / content_filter / error.

    A missing reason of a complete JSON answer reads as ``stop``; an unrecognised one is
    passed through as sent (such an answer is returned but never cached). A stream needs a
    recognised one to count as finished (`StreamState.closing_chunk`).
    """
    if not value:
        return "stop"
    return _FINISH.get(value, value)


def _file_name(part: FilePart) -> str:
    if part.filename:
        return part.filename
    if part.title:
        return part.title
    # OpenAI wants a name with inline file data; a neutral one, from the media type.
    subtype = (part.media_type or "application/octet-stream").rpartition("/")[2]
    return f"document.{subtype}"


def _part(part: Part) -> dict[str, Any] | None:
    """One content part in Chat Completions' form (`ChatCompletionContentPartParam`).

    Text is ``text``; an image is ``image_url`` (an http(s) URL, or base64 data as a data
    URL), with ``detail`` when set; audio is ``input_audio`` (base64 ``data`` and
    ``format``); a document is ``file`` (``file_data`` as a data URL with ``filename``, or
    ``file_id``). A plain-text document is sent as text. `CacheControl` markers and reasoning
    have no place on this wire and are left out (the route reports stripping them).
    """
    kind = type(part)
    if kind is TextPart:
        return {"type": "text", "text": part.text}  # type: ignore[union-attr]
    if kind is ImagePart:
        if part.file_id is not None:  # type: ignore[union-attr]
            raise InvalidRequestError(
                "OpenAI Chat Completions takes images by URL or base64 data, not by file id"
            )
        image: dict[str, Any] = {"url": part.data_url or part.url}  # type: ignore[union-attr]
        if part.detail is not None:  # type: ignore[union-attr]
            image["detail"] = part.detail  # type: ignore[union-attr]
        return {"type": "image_url", "image_url": image}
    if kind is AudioPart:
        return {
            "type": "input_audio",
            "input_audio": {"data": part.data, "format": part.format},  # type: ignore[union-attr]
        }
    if isinstance(part, FilePart):
        if part.text is not None:
            return {"type": "text", "text": part.text}
        if part.file_id is not None:
            return {"type": "file", "file": {"file_id": part.file_id}}
        if part.data is not None:
            return {
                "type": "file",
                "file": {"file_data": part.data_url, "filename": _file_name(part)},
            }
        raise InvalidRequestError(
            "OpenAI Chat Completions takes documents as base64 data or a file id, not by URL"
        )
    return None  # reasoning: never sent on this wire


def _content(content: str | tuple[Part, ...]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return [wire for wire in map(_part, content) if wire is not None]


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        content = message.content
        if not isinstance(content, str) and all(type(p) is TextPart for p in content):
            content = message.text  # a text result as a string, as every server takes
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": _content(content)}
    content = message.content
    if message.role != "user" and not isinstance(content, str):
        content = message.text  # system and assistant turns: their text
    data: dict[str, Any] = {"role": message.role, "content": _content(content)}
    if message.name:
        data["name"] = message.name
    if message.tool_calls:
        data["content"] = data["content"] or None
        data["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    return data


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def build_params(
    request: ChatRequest,
    model: str,
    *,
    max_tokens_param: str = "max_completion_tokens",
    default_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``client.chat.completions.create`` (without streaming options).

    ``extra`` parameters of the request go to ``extra_body``, except secrets and transport
    settings (`PASSTHROUGH_EXCLUDED`); ``extra_headers`` in ``extra`` become request headers.
    """
    params: dict[str, Any] = dict(default_params or {})
    params["model"] = model
    params["messages"] = [_message(m) for m in request.messages]
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.max_tokens is not None:
        params[max_tokens_param] = request.max_tokens
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop is not None:
        params["stop"] = list(request.stop)
    if request.seed is not None:
        params["seed"] = request.seed
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": dict(tool.parameters),
                },
            }
            for tool in request.tools
        ]
    if request.tool_choice is not None:
        params["tool_choice"] = _tool_choice(request.tool_choice)
    if request.response_format is not None:
        params["response_format"] = dict(request.response_format)
    extra = {k: v for k, v in request.extra.items() if k not in PASSTHROUGH_EXCLUDED}
    if extra:
        params["extra_body"] = extra
    headers = request.extra.get("extra_headers")
    if isinstance(headers, Mapping) and headers:
        params["extra_headers"] = dict(headers)
    return params


def to_usage(usage: Any) -> Usage | None:
    """Our `Usage` from an SDK usage object (None when the provider sent none)."""
    if usage is None:
        return None
    prompt = getattr(usage, "prompt_tokens_details", None)
    completion = getattr(usage, "completion_tokens_details", None)
    return Usage(
        int(getattr(usage, "prompt_tokens", 0) or 0),
        int(getattr(usage, "completion_tokens", 0) or 0),
        0 if prompt is None else int(getattr(prompt, "cached_tokens", 0) or 0),
        0,
        0 if completion is None else int(getattr(completion, "reasoning_tokens", 0) or 0),
    )


def parse_completion(completion: Any, provider: str) -> ChatResponse:
    """Our `ChatResponse` from an SDK ``ChatCompletion``.

    Raises:
        ProviderError: The 200 response is a failure: an in-band error object, a content
            filter, ``finish_reason: "error"`` or an empty answer (see `check_answer`).
        ValueError: The completion has no choices (the caller reports a malformed response).
    """
    error = getattr(completion, "error", None)
    if error:
        raise in_band_error(error, provider)
    choices = completion.choices
    if not choices:
        raise ValueError("the completion has no choices")
    choice = choices[0]
    error = getattr(choice, "error", None)
    if error:
        raise in_band_error(error, provider)
    message = choice.message
    text = message.content or ""
    reasoning = _reasoning_text(message)
    reason = finish_reason(choice.finish_reason)
    refusal = getattr(message, "refusal", None)
    if refusal and not text:
        text, reason = refusal, REFUSAL
    calls = tuple(
        ToolCall(call.id, call.function.name, call.function.arguments or "{}")
        for call in message.tool_calls or ()
        if getattr(call, "function", None) is not None
    )
    check_answer(bool(text), bool(calls), reason, provider)
    return ChatResponse(
        text=text,
        tool_calls=calls,
        finish_reason=reason,
        usage=to_usage(completion.usage),
        provider=provider,
        provider_model=getattr(completion, "model", None) or None,
        response_id=_id(completion),
        reasoning=(ReasoningPart(reasoning, provider=provider),) if reasoning else (),
    )


def _reasoning_text(message: Any) -> str:
    """The reasoning an OpenAI-compatible server returned beside the answer: DeepSeek's and
    vLLM's ``reasoning_content``, or OpenRouter's, Groq's and newer vLLM's ``reasoning``.

    Neither is a declared field of the SDK's types: read from the extras directly (a getattr
    that misses costs a pydantic AttributeError).
    """
    extra = getattr(message, "__pydantic_extra__", None)
    if not extra:
        return ""
    text = extra.get("reasoning_content") or extra.get("reasoning")
    return text if isinstance(text, str) else ""


def _id(obj: Any) -> str | None:
    value = getattr(obj, "id", None)
    return value if isinstance(value, str) and value else None


class StreamState:
    """Folds ``ChatCompletionChunk``s into chunks; checks the stream really finished.

    Tool-call fragments go through a `ToolCallAssembler`, so the chunks carry each call's
    slot (parallel calls that a server numbers alike get their own); refusal deltas stream
    as text. Content-free deltas (role-only, empty) yield no chunk.
    """

    __slots__ = (
        "_calls",
        "_reasoning",
        "finish",
        "has_text",
        "id",
        "model",
        "provider",
        "refused",
        "usage",
    )

    def __init__(self, provider: str = "openai") -> None:
        self.provider = provider
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self.id: str | None = None
        self.has_text = False
        self.refused = False
        self._calls = ToolCallAssembler()
        self._reasoning: list[str] = []

    def feed(self, chunk: Any) -> StreamChunk | None:
        """The chunk this SDK chunk adds, if any.

        Raises:
            ProviderError: The chunk carries an in-band ``error`` object (OpenRouter's
                mid-stream error), like `parse_completion` does for a whole answer.
        """
        # `error` is never a declared field of the SDK's chunk: look in the extras directly
        # (a getattr that misses costs a pydantic AttributeError, microseconds per chunk).
        extra = getattr(chunk, "__pydantic_extra__", None)
        error = extra.get("error") if extra else getattr(chunk, "__dict__", {}).get("error")
        if error:
            raise in_band_error(error, self.provider)
        if self.model is None:
            model = getattr(chunk, "model", None)
            self.model = model if isinstance(model, str) and model else None
            self.id = _id(chunk)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = to_usage(usage)
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason is not None:
            self.finish = choice.finish_reason
        delta = choice.delta
        if delta is None:
            return None
        text = delta.content or ""
        if not text:
            refusal = getattr(delta, "refusal", None)
            if refusal:
                text = refusal
                self.refused = True
        calls = delta.tool_calls
        if not calls:
            if not text:
                # Looked for only in chunks without text: reasoning streams before the answer.
                reasoning = _reasoning_text(delta)
                if not reasoning:
                    return None
                self._reasoning.append(reasoning)
                return StreamChunk(reasoning=reasoning)
            self.has_text = True
            return StreamChunk(text=text)
        deltas = tuple([self._delta(call) for call in calls])
        self.has_text = self.has_text or bool(text)
        return StreamChunk(text=text, tool_call_deltas=deltas)

    def _delta(self, call: Any) -> ToolCallDelta:
        function = call.function
        name = (function.name or None) if function else None
        arguments = (function.arguments or "") if function else ""
        index, id = getattr(call, "index", None), call.id or None
        slot = None if id or name or index is None else self._calls.slot_of(index)
        if slot is None:
            slot = self._calls.add(index, id, name, None)
        return ToolCallDelta(slot, id, name, arguments)

    def closing_chunk(self) -> StreamChunk:
        """The last chunk, with finish reason and usage.

        Raises:
            ProviderConnectionError: The stream ended without a recognised finish reason
                (cut off; an unknown or empty reason does not count as a finish).
            ProviderError: The finished answer is a failure (see `check_answer`).
        """
        if self.finish not in _FINISH:
            got = (
                f" (last finish_reason {self.finish!r}, not one we recognise)"
                if self.finish
                else ""
            )
            raise ProviderConnectionError(
                f"the response stream ended before the answer finished{got}"
            )
        reason = REFUSAL if self.refused else _FINISH[self.finish]
        check_answer(self.has_text, bool(self._calls), reason, self.provider)
        reasoning = "".join(self._reasoning)
        return StreamChunk(
            finish_reason=reason,
            usage=self.usage,
            provider_model=self.model,
            response_id=self.id,
            reasoning_parts=(ReasoningPart(reasoning, provider=self.provider),)
            if reasoning
            else (),
        )
