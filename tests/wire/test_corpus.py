"""Every transcript of the wire corpus decodes to the same answer streamed or not."""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import openai
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from reliable_llm import ChatRequest, ChatResponse, Message, RateLimitError, StreamAccumulator
from reliable_llm._provider import Provider
from reliable_llm.providers import AnthropicProvider, OpenAIProvider
from reliable_llm.providers import _anthropic_wire as anthropic_wire
from reliable_llm.providers import _openai_wire as openai_wire
from reliable_llm.providers._base import SDKProvider
from reliable_llm.testing.fake_server import FakeLLMServer, Transcript
from tests.wire.corpus import CASES, Case

REQUEST = ChatRequest((Message.user("hi"),))
STREAMED = [case for case in CASES if case.streamed]


def _answer(response: ChatResponse) -> tuple[object, ...]:
    return (
        response.text,
        response.tool_calls,
        response.finish_reason,
        response.usage,
        response.provider_model,
    )


def _provider(case: Case, server: FakeLLMServer, closing: list[SDKProvider]) -> Provider:
    provider: SDKProvider
    if case.protocol == "anthropic":
        provider = AnthropicProvider("m", api_key="sk-ant-test", base_url=server.anthropic_base_url)
    else:
        provider = OpenAIProvider("m", api_key="sk-test", base_url=server.openai_base_url)
    closing.append(provider)
    return provider


def _through_provider(provider: Provider, streamed: bool) -> ChatResponse:
    if not streamed:
        return provider.complete(REQUEST)
    acc = StreamAccumulator()
    for chunk in provider.stream(REQUEST):
        acc.add(chunk)
    return acc.response()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_transcript_through_the_provider(
    case: Case, server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """Replayed by the fake server, each transcript gives the answer (or error) it means."""
    server.script("m", Transcript.from_file(case.path))
    provider = _provider(case, server, closing)
    if isinstance(case.expected, ChatResponse):
        assert _answer(_through_provider(provider, case.streamed)) == _answer(case.expected)
    else:
        with pytest.raises(case.expected):
            _through_provider(provider, case.streamed)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_transcript_through_the_async_provider(
    case: Case, server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """The async paths decode each transcript the same way as the sync ones."""
    server.script("m", Transcript.from_file(case.path))
    provider = _provider(case, server, closing)

    async def run() -> ChatResponse:
        if not case.streamed:
            return await provider.acomplete(REQUEST)
        acc = StreamAccumulator()
        async for chunk in provider.astream(REQUEST):
            acc.add(chunk)
        return acc.response()

    if isinstance(case.expected, ChatResponse):
        assert _answer(await run()) == _answer(case.expected)
    else:
        with pytest.raises(case.expected):
            await run()


def _sdk_events(case: Case, server: FakeLLMServer) -> list[Any]:
    server.script("m", Transcript.from_file(case.path))
    if case.protocol == "anthropic":
        with anthropic.Anthropic(
            base_url=server.anthropic_base_url, api_key="k", max_retries=0
        ) as client:
            stream = client.messages.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            return list(stream)
    with openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0) as client:
        return list(client.chat.completions.create(model="m", messages=[], stream=True))


def _stream_decoder(case: Case, events: list[Any]) -> ChatResponse:
    state: Any = (
        anthropic_wire.StreamState(None)
        if case.protocol == "anthropic"
        else openai_wire.StreamState()
    )
    acc = StreamAccumulator()
    for event in events:
        chunk = state.feed(event)
        if chunk is not None:
            acc.add(chunk)
    acc.add(state.closing_chunk())
    return acc.response()


def _json_decoder(case: Case, events: list[Any]) -> ChatResponse:
    """The SDK's own accumulation of the stream, read by our non-streaming decoder."""
    if case.protocol == "anthropic":
        message: Any = None
        json_bufs: dict[int, bytes] = {}
        for event in events:
            message = accumulate_event(event=event, current_snapshot=message, json_bufs=json_bufs)
        return anthropic_wire.parse_message(message, "anthropic", None)
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for event in events:
        state.handle_chunk(event)
    return openai_wire.parse_completion(state.current_completion_snapshot, "openai")


@pytest.mark.parametrize(
    "case", [c for c in STREAMED if isinstance(c.expected, ChatResponse)], ids=str
)
def test_stream_and_json_decoders_agree(case: Case, server: FakeLLMServer) -> None:
    """Our stream decoder and our JSON decoder (over the SDK's accumulation) agree."""
    events = _sdk_events(case, server)
    # The model id is left out: the SDK's accumulation keeps the first chunk's, which Azure's
    # prompt-filter preamble leaves empty; the other tests pin it per transcript.

    streamed, whole = _stream_decoder(case, events), _json_decoder(case, events)
    assert _answer(streamed)[:4] == _answer(whole)[:4]


def _raw_chunks(case: Case) -> list[Any]:
    """The stream's chunks built straight from its ``data:`` lines, as the SDK builds them.

    The SDK raises on an event carrying an ``error`` before its chunk reaches a decoder, so
    this is how our decoders themselves are shown such an event.
    """
    lines = case.path.read_text().splitlines()
    return [
        ChatCompletionChunk.construct(**json.loads(line[6:]))
        for line in lines
        if line.startswith("data: {")
    ]


def _error_message(case: Case) -> str:
    """The message of the transcript's in-band error object, read straight from the file."""
    for chunk in _raw_chunks(case):
        error = getattr(chunk, "error", None)
        if isinstance(error, dict):
            return str(error["message"])
    raise AssertionError(f"{case} has no in-band error object")


@pytest.mark.parametrize(
    "case",
    [c for c in STREAMED if c.protocol == "openai" and not isinstance(c.expected, ChatResponse)],
    ids=str,
)
def test_in_band_stream_errors_fail_both_decoders(case: Case) -> None:
    """An error event in a 200 stream fails our stream and JSON decoders alike, with its message."""
    assert isinstance(case.expected, type)
    chunks = _raw_chunks(case)
    with pytest.raises(case.expected, match=re.escape(_error_message(case))):
        _stream_decoder(case, chunks)
    with pytest.raises(case.expected):
        _json_decoder(case, chunks)


def test_stream_decoder_classifies_an_in_band_error_by_its_code() -> None:
    """A numeric ``code`` in a chunk's error object (OpenRouter's schema) decides its class."""
    chunk = ChatCompletionChunk.construct(
        id="gen-1",
        object="chat.completion.chunk",
        created=1,
        model="m",
        error={"code": 429, "message": "Rate limit exceeded upstream"},
        choices=[],
    )
    with pytest.raises(RateLimitError, match="Rate limit exceeded upstream"):
        openai_wire.StreamState("openrouter").feed(chunk)


def test_every_transcript_file_is_in_the_corpus() -> None:
    """No transcript file sits in the directory without a case (and a cited source)."""
    from tests.wire.corpus import DIRECTORY

    files = {p.name for p in DIRECTORY.iterdir() if p.suffix in (".sse", ".json")}
    assert files == {case.file for case in CASES}
    assert all(case.source.startswith("https://") for case in CASES)


ANSWERED = [case for case in CASES if isinstance(case.expected, ChatResponse)]


@pytest.mark.parametrize("case", ANSWERED, ids=str)
def test_transcript_response_id(
    case: Case, server: FakeLLMServer, closing: list[SDKProvider]
) -> None:
    """The answer carries the provider's response id, as the transcript spells it."""
    server.script("m", Transcript.from_file(case.path))
    response = _through_provider(_provider(case, server, closing), case.streamed)
    text = case.path.read_text()
    if '"id"' not in text:
        assert response.response_id is None
        return
    assert response.response_id
    assert f'"id":"{response.response_id}"' in text.replace(": ", ":")
