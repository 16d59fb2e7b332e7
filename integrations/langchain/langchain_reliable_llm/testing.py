"""A deterministic, offline model that answers chat, tool-calling and structured requests.

`SmartFakeModel` is a `reliable_llm.Provider` for tests and demos of chains and agents:

- with tools and a user message last, it calls the forced tool (``tool_choice``), else every
  tool named in the prompt, else the first tool; arguments are generated from each tool's
  JSON schema, filled with the numbers and quoted strings of the prompt, in order;
- with a tool result last, it answers in text that quotes the results;
- with ``response_format`` JSON schema it returns JSON matching the schema; with JSON mode
  (or a schema that is a free-form object), an object whose keys are the quoted words of
  the prompt;
- otherwise it answers ``"Echo: <last user message>"``.

It honours ``stop`` and ``max_tokens`` (in words), reports word-count usage, streams in
small chunks natively (sync and async), and records every request in ``calls``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from reliable_llm import (
    ChatRequest,
    ChatResponse,
    ModelCapabilities,
    Provider,
    StreamChunk,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["SmartFakeModel"]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")
_WORD = re.compile(r"[^\W\d_][\w-]*")


class _Values:
    """The prompt's numbers and strings, handed out in order to schema fields."""

    def __init__(self, prompt: str) -> None:
        self.numbers = [float(n) for n in _NUMBER.findall(prompt)]
        self.strings: list[str] = [a or b for a, b in _QUOTED.findall(prompt)]
        words = _WORD.findall(_QUOTED.sub(" ", prompt))
        capitalized = [w for w in words[1:] if w[0].isupper()]
        self.topic = (capitalized or words[-1:] or ["fake"])[0]

    def number(self) -> float:
        return self.numbers.pop(0) if self.numbers else 0.0

    def string(self, name: str) -> str:
        if self.strings:
            return self.strings.pop(0)
        return f"{name.replace('_', ' ')} about {self.topic}"


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {})
        return _resolve(target, root)
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, ()) if o.get("type") != "null"]
        if options:
            return _resolve(options[0], root)
    return schema


def _value(name: str, schema: Mapping[str, Any], root: Mapping[str, Any], values: _Values) -> Any:
    schema = _resolve(schema, root)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "integer":
        return int(values.number())
    if kind == "number":
        return values.number()
    if kind == "boolean":
        return True
    if kind == "array":
        return [_value(name, schema.get("items", {}), root, values)]
    if kind == "object":
        properties = schema.get("properties")
        if not properties:  # a free-form object: its keys are the prompt's quoted words
            keys, values.strings = values.strings, []
            return {key: f"{key} about {values.topic}" for key in keys}
        return {key: _value(key, sub, root, values) for key, sub in properties.items()}
    return values.string(name)


def arguments_for(parameters: Mapping[str, Any], prompt: str) -> dict[str, Any]:
    """Arguments matching a JSON schema object, filled from the prompt's values in order."""
    value = _value("value", parameters, parameters, _Values(prompt))
    return value if isinstance(value, dict) else {"value": value}


class SmartFakeModel(Provider):
    """A deterministic model that answers text, tool-calling and structured-output requests.

    It takes every content part as given (images, audio, documents, reasoning, cache
    markers), like `reliable_llm.testing.ScriptedModel`, and answers from the text parts.

    Args:
        name: Provider name reported in responses.
        chunk_size: Characters per streamed text chunk.
    """

    #: A test fake: every part reaches it as given.
    capabilities = ModelCapabilities(
        image=frozenset(("data", "url", "file_id")),
        audio=True,
        file=frozenset(("data", "url", "file_id")),
        reasoning_replay=True,
        prompt_caching=True,
        tool_result_media=True,
    )

    def __init__(self, name: str = "smart-fake", *, chunk_size: int = 6) -> None:
        self.provider_name = name
        self.chunk_size = chunk_size
        self.calls: list[ChatRequest] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def call_count(self) -> int:
        """How many requests reached this model."""
        return len(self.calls)

    def _tools_to_call(self, request: ChatRequest, prompt: str) -> list[Tool]:
        tools = request.tools
        if request.tool_choice not in (None, "auto", "required", "none"):
            return [t for t in tools if t.name == request.tool_choice]
        named = sorted((prompt.find(t.name), i) for i, t in enumerate(tools) if t.name in prompt)
        return [tools[i] for _, i in named] or [tools[0]]

    def _answer(self, request: ChatRequest) -> ChatResponse:
        with self._lock:
            self.calls.append(request)
        last = request.messages[-1]
        if request.tools and request.tool_choice != "none" and last.role == "user":
            calls = []
            for tool in self._tools_to_call(request, last.text):
                args = arguments_for(tool.parameters, last.text)
                calls.append(
                    ToolCall(
                        f"call_{next(self._ids)}", tool.name, json.dumps(args, ensure_ascii=False)
                    )
                )
            return self._response(request, "", tuple(calls))
        fmt = request.response_format or {}
        if fmt.get("type") == "json_schema":
            schema = fmt.get("json_schema", {}).get("schema", {})
            return self._response(request, json.dumps(arguments_for(schema, last.text)))
        if fmt.get("type") == "json_object":
            keys = _Values(last.text).strings or ["answer"]
            text = json.dumps({k: f"{k} about {_Values(last.text).topic}" for k in keys})
            return self._response(request, text)
        if last.role == "tool":
            results = [m.text for m in request.messages if m.role == "tool"]
            return self._response(request, "The tools returned: " + "; ".join(results))
        return self._response(request, f"Echo: {last.text}")

    def _response(
        self, request: ChatRequest, text: str, calls: tuple[ToolCall, ...] = ()
    ) -> ChatResponse:
        finish = "tool_calls" if calls else "stop"
        for stop in request.stop or ():
            if stop and stop in text:
                text = text[: text.index(stop)]
        words = text.split()
        if request.max_tokens is not None and len(words) > request.max_tokens:
            text = " ".join(words[: request.max_tokens])
            finish = "length"
        prompt_words = sum(len(m.text.split()) for m in request.messages)
        usage = Usage(max(prompt_words, 1), max(len(text.split()), len(calls)))
        return ChatResponse(
            text=text,
            tool_calls=calls,
            finish_reason=finish,
            usage=usage,
            provider=self.provider_name,
            provider_model="smart-fake-1",
        )

    def _chunks(self, response: ChatResponse) -> Iterator[StreamChunk]:
        text = response.text
        for i in range(0, len(text), self.chunk_size):
            yield StreamChunk(text=text[i : i + self.chunk_size])
        for index, call in enumerate(response.tool_calls):
            half = len(call.arguments) // 2
            yield StreamChunk(
                tool_call_deltas=(ToolCallDelta(index, call.id, call.name, call.arguments[:half]),)
            )
            yield StreamChunk(
                tool_call_deltas=(ToolCallDelta(index, arguments=call.arguments[half:]),)
            )
        yield StreamChunk(finish_reason=response.finish_reason, usage=response.usage)

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        """Answer at once."""
        return self._answer(request)

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        """Answer at once, yielding to the event loop first."""
        await asyncio.sleep(0)
        return self._answer(request)

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        """Stream the answer in chunks of ``chunk_size`` characters."""
        return self._chunks(self._answer(request))

    async def astream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of `stream`, yielding to the event loop between chunks."""
        for chunk in self._chunks(self._answer(request)):
            await asyncio.sleep(0)
            yield chunk

    def describe(self) -> dict[str, object]:
        """Provider name and kind."""
        return {"provider": self.provider_name, "kind": "smart-fake"}

    def __repr__(self) -> str:
        return f"SmartFakeModel(name={self.provider_name!r}, calls={self.call_count})"
