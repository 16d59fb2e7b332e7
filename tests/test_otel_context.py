"""Live OpenTelemetry spans: the request span is current while the manager serves a request,
each attempt's span while its provider runs (threads, tasks and every step of a stream), and
neither leaks into the caller's code. Read back from the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from drivers import ask_with
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import reliable_llm.otel
from reliable_llm import (
    ChatRequest,
    ChatResponse,
    ConfigurationError,
    LLMManager,
    Provider,
    ServerError,
    StreamChunk,
)
from reliable_llm.events import RequestFinished
from reliable_llm.testing import FakeClock


class Traced:
    """A manager on the fake clock, instrumented into an in-memory exporter, and a tracer
    for the spans a user's own code makes."""

    def __init__(self, clock: FakeClock, **provider_kwargs: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(**provider_kwargs)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.user = self.provider.get_tracer("user-code")
        self.manager = LLMManager(max_retries=1, clock=clock, random=lambda: 0.0)
        reliable_llm.otel.instrument(self.manager, tracer_provider=self.provider)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


@pytest.mark.parametrize("driver", ["sync", "async", "stream", "astream"])
def test_model_code_nests_under_its_attempt_span(clock: FakeClock, driver: str) -> None:
    """A span made inside a model function (run in a worker thread by every driver) is a
    child of that attempt's CLIENT span; the request span is a child of the caller's span;
    and the caller's span is current again once the call returns."""
    traced = Traced(clock)
    calls = 0

    def model(prompt: str, **kwargs: Any) -> str:
        nonlocal calls
        with traced.user.start_as_current_span("model.work"):
            calls += 1
            if calls == 1:
                raise ServerError("blip", status_code=503)
            return "ok"

    traced.manager.register_model("m", model)
    with traced.user.start_as_current_span("caller") as caller:
        response = ask_with(driver, traced.manager, "hi")
        assert trace.get_current_span() is caller
    assert (response.text, len(response.attempts)) == ("ok", 2)

    (request,) = traced.named("reliable_llm.request")
    first, second = traced.named("chat m")
    work = traced.named("model.work")
    (caller_span,) = traced.named("caller")
    assert parent_of(request) == span_id(caller_span)
    assert [parent_of(first), parent_of(second)] == [span_id(request)] * 2
    assert [parent_of(w) for w in work] == [span_id(first), span_id(second)]
    assert {s.context.trace_id for s in traced.spans() if s.context} == {
        caller.get_span_context().trace_id
    }


def test_hooks_and_cache_hits_run_inside_the_request_span(clock: FakeClock) -> None:
    """Event hooks run with the request span current, and a cache hit is one request span
    (cache.hit true) under the caller's span, with no attempt span."""
    traced = Traced(clock)
    seen: list[str] = []

    def hook(event: object) -> None:
        if isinstance(event, RequestFinished):
            span = trace.get_current_span()
            seen.append(getattr(span, "name", "?"))

    traced.manager.add_hook(hook)
    traced.manager.register_model("m", lambda prompt, **kw: "ok")
    traced.manager.chat("hi")
    with traced.user.start_as_current_span("caller"):
        assert traced.manager.chat("hi").cached
    assert seen == ["reliable_llm.request"]
    *_, hit, caller_span = traced.spans()
    assert hit.name == "reliable_llm.request" and parent_of(hit) == span_id(caller_span)
    assert dict(hit.attributes or {})["reliable_llm.cache.hit"] is True
    assert len(traced.named("chat m")) == 1


class SteppedModel(Provider):
    """A streaming model whose every step makes a span and notes the span current in it."""

    enforces_timeout = True

    def __init__(self, traced: Traced, hang_after: int | None = None) -> None:
        self.traced = traced
        self.hang_after = hang_after
        self.current: list[str] = []

    def _note(self, step: int) -> None:
        self.current.append(getattr(trace.get_current_span(), "name", "?"))

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        return ChatResponse("abc")

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        return ChatResponse("abc")

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        for step, text in enumerate("abc"):
            self._note(step)
            with self.traced.user.start_as_current_span(f"step {step}"):
                pass
            yield StreamChunk(text)

    async def astream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        for step, text in enumerate("abc"):
            if step == self.hang_after:
                await asyncio.Event().wait()  # until cancelled
            self._note(step)
            with self.traced.user.start_as_current_span(f"step {step}"):
                await asyncio.sleep(0)
            yield StreamChunk(text)


def _stream_structure(traced: Traced, steps: int) -> tuple[ReadableSpan, ReadableSpan]:
    spans = traced.spans()
    names = [s.name for s in spans]
    attempt = spans[names.index("chat m")]
    request = spans[names.index("reliable_llm.request")]
    step_spans = [s for s in spans if s.name.startswith("step ")]
    assert len(step_spans) == steps
    assert all(parent_of(s) == span_id(attempt) for s in step_spans)
    assert parent_of(attempt) == span_id(request)
    # The attempt's span ends after the stream's last step, the request's after it.
    assert names.index("chat m") > max(names.index(s.name) for s in step_spans)
    assert names.index("reliable_llm.request") > names.index("chat m")
    return attempt, request


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "worker-thread"])
def test_stream_steps_nest_under_the_attempt_and_never_leak_to_the_caller(
    clock: FakeClock, inline: bool
) -> None:
    """Each step of a provider's stream runs inside the attempt span (in the caller's thread,
    or in the worker thread that reads a stream that does not bound its own waits), which
    covers the stream until it ends; the caller's loop body sees its own span, never ours."""
    traced = Traced(clock)
    model = SteppedModel(traced)
    model.enforces_timeout = inline
    traced.manager.register_model("m", model)
    between: list[object] = []
    with traced.user.start_as_current_span("caller") as caller:
        for _chunk in traced.manager.stream("hi"):
            between.append(trace.get_current_span())
    assert between == [caller] * 3
    assert model.current == ["chat m"] * 3
    _attempt, request = _stream_structure(traced, 3)
    assert dict(request.attributes or {})["reliable_llm.outcome"] == "success"


def test_async_stream_steps_nest_and_never_leak(clock: FakeClock) -> None:
    """The async twin: steps nest under the attempt span, the caller's task sees only its
    own span between chunks and after the stream."""
    traced = Traced(clock)
    model = SteppedModel(traced)
    traced.manager.register_model("m", model)

    async def consume() -> list[object]:
        between = []
        with traced.user.start_as_current_span("caller") as caller:
            async for _chunk in traced.manager.astream("hi"):
                between.append(trace.get_current_span())
            assert trace.get_current_span() is caller
            return [b is caller for b in between]

    assert asyncio.run(consume()) == [True] * 3
    assert model.current == ["chat m"] * 3
    _stream_structure(traced, 3)


def test_abandoned_stream_ends_both_spans(clock: FakeClock) -> None:
    """A stream closed after its first chunk ends its attempt span (cancelled) and its
    request span (outcome cancelled): no span is left open."""
    traced = Traced(clock)
    traced.manager.register_model("m", SteppedModel(traced))
    with traced.user.start_as_current_span("caller") as caller:
        stream = traced.manager.stream("hi")
        next(stream)
        stream.close()
        assert trace.get_current_span() is caller
    attempt, request = _stream_structure(traced, 1)
    assert dict(attempt.attributes or {})["reliable_llm.attempt.cancelled"] is True
    assert dict(request.attributes or {})["reliable_llm.outcome"] == "cancelled"
    assert request.status.status_code is trace.StatusCode.UNSET


def test_cancelled_stream_task_ends_both_spans(clock: FakeClock) -> None:
    """A task cancelled while it waits for the next chunk ends the attempt span (cancelled)
    and the request span (cancelled); the cancellation still reaches the task."""
    traced = Traced(clock)
    traced.manager.register_model("m", SteppedModel(traced, hang_after=1))

    async def main() -> None:
        got_one = asyncio.Event()

        async def consume() -> None:
            async for _chunk in traced.manager.astream("hi"):
                got_one.set()

        task = asyncio.create_task(consume())
        await got_one.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    attempt, request = _stream_structure(traced, 1)
    assert dict(attempt.attributes or {})["reliable_llm.attempt.cancelled"] is True
    assert dict(request.attributes or {})["reliable_llm.outcome"] == "cancelled"


def test_concurrent_tasks_keep_their_own_spans(clock: FakeClock) -> None:
    """Requests in concurrent asyncio tasks that interleave inside the model each nest under
    their own caller's trace; no span crosses to the other task."""
    traced = Traced(clock)

    async def model(prompt: str, **kwargs: Any) -> str:
        for _ in range(3):
            await asyncio.sleep(0)  # let the other task run inside its own request
        with traced.user.start_as_current_span(f"work {prompt}"):
            return prompt

    traced.manager.register_model("m", model)

    async def ask(prompt: str) -> int:
        with traced.user.start_as_current_span(f"caller {prompt}") as caller:
            await traced.manager.achat(prompt)
            assert trace.get_current_span() is caller
            return caller.get_span_context().trace_id

    async def main() -> list[int]:
        return list(await asyncio.gather(ask("a"), ask("b")))

    trace_a, trace_b = asyncio.run(main())
    assert trace_a != trace_b
    for prompt, trace_id in (("a", trace_a), ("b", trace_b)):
        (work,) = traced.named(f"work {prompt}")
        assert work.context is not None and work.context.trace_id == trace_id
        attempt = next(s for s in traced.spans() if span_id(s) == parent_of(work))
        assert attempt.name == "chat m"


def test_a_local_mistake_ends_its_attempt_span_in_error(clock: FakeClock) -> None:
    """A ConfigurationError raised inside a model call (the caller's mistake, not an
    attempt) ends the span it opened, with error.type naming it."""
    traced = Traced(clock)

    def model(prompt: str, **kwargs: Any) -> str:
        raise ConfigurationError("bad parameter")

    traced.manager.register_model("m", model)
    with pytest.raises(ConfigurationError):
        traced.manager.chat("hi")
    attempt, request = traced.spans()
    assert attempt.name == "chat m"
    assert dict(attempt.attributes or {})["error.type"] == "ConfigurationError"
    assert attempt.status.status_code is trace.StatusCode.ERROR
    assert dict(request.attributes or {})["error.type"] == "ConfigurationError"


def test_unsampled_request_still_propagates_its_context(clock: FakeClock) -> None:
    """With a sampler that records nothing, no span is exported, but the request's (not
    sampled) span context is current inside the model, so downstream services see one
    trace."""
    traced = Traced(clock, sampler=ALWAYS_OFF)
    inside: list[trace.SpanContext] = []

    def model(prompt: str, **kwargs: Any) -> str:
        inside.append(trace.get_current_span().get_span_context())
        return "ok"

    traced.manager.register_model("m", model)
    traced.manager.chat("hi")
    assert traced.spans() == []
    (context,) = inside
    assert context.is_valid and not context.trace_flags.sampled


def test_readme_live_span_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's live-span example prints the nesting it promises."""
    readme = Path(__file__).parent.parent / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    (code,) = [block for block in blocks if "retrieve context" in block]
    exec(compile(code, str(readme), "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "retrieve context <- chat m",
        "chat m <- reliable_llm.request",
        "reliable_llm.request <- None",
    ]


def test_concurrent_threads_keep_their_own_spans(clock: FakeClock) -> None:
    """Requests from many threads at once, each model call in a worker thread, nest under
    their own caller's trace."""
    traced = Traced(clock)

    def model(prompt: str, **kwargs: Any) -> str:
        with traced.user.start_as_current_span(f"work {prompt}"):
            return prompt

    traced.manager.register_model("m", model)

    def ask(prompt: str) -> tuple[str, int]:
        with traced.user.start_as_current_span(f"caller {prompt}") as caller:
            traced.manager.chat(prompt, use_cache=False)
            return prompt, caller.get_span_context().trace_id

    with ThreadPoolExecutor(8) as pool:
        callers = dict(pool.map(ask, [str(n) for n in range(16)]))
    assert len(set(callers.values())) == 16
    for prompt, trace_id in callers.items():
        (work,) = traced.named(f"work {prompt}")
        assert work.context is not None and work.context.trace_id == trace_id
