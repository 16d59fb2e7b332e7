"""OpenTelemetry export: GenAI-convention spans and metrics, read back from the SDK's in-memory
exporters, for every driver."""

from __future__ import annotations

import json
from typing import Any

import pytest
from drivers import ask_with
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import reliable_llm.otel
from reliable_llm import (
    AllModelsFailedError,
    ChatResponse,
    ConfigurationError,
    LLMManager,
    Message,
    ServerError,
    Usage,
)
from reliable_llm.testing import FakeClock, Reply, ScriptedModel


class Exported:
    """An instrumented manager whose spans and metrics are kept in memory."""

    def __init__(self, clock: FakeClock, capture_content: bool = False) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.manager = LLMManager(max_retries=1, clock=clock, random=lambda: 0.0)
        self.primary = ScriptedModel(default=ServerError("down", status_code=503))
        self.backup = ScriptedModel(default=Reply("from backup", latency=0.5), clock=clock)
        self.manager.register_model(
            "primary", self.primary, metadata={"prices": {"input": 1.0, "output": 2.0}}
        )
        self.manager.register_model(
            "backup", self.backup, metadata={"prices": {"input": 3.0, "output": 6.0}}
        )
        self.manager.set_fallback_chain(["backup"])
        self.tracer_provider = tracer_provider
        self.hook = reliable_llm.otel.instrument(
            self.manager,
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[self.reader]),
            capture_content=capture_content,
        )

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        assert data is not None
        found: dict[str, list[Any]] = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "reliable_llm"
                for metric in scope.metrics:
                    found[metric.name] = [metric.unit, *metric.data.data_points]
        return found


REQUEST = [Message.system("be brief"), Message.user("two words")]
PARAMS: dict[str, Any] = {"temperature": 0.2, "max_tokens": 50}


@pytest.mark.parametrize("driver", ["sync", "async", "stream", "astream"])
def test_retry_fallback_then_cache_hit_spans(clock: FakeClock, driver: str) -> None:
    """A request that retries, falls back and is then served from the cache exports one
    INTERNAL request span per request, with one CLIENT `chat` span per upstream attempt."""
    exported = Exported(clock)
    first = ask_with(driver, exported.manager, REQUEST, **PARAMS)
    second = ask_with(driver, exported.manager, REQUEST, **PARAMS)
    assert (first.model, second.cached) == ("backup", True)

    spans = exported.finished()
    assert [(s.name, s.kind) for s in spans] == [
        ("chat primary", SpanKind.CLIENT),
        ("chat primary", SpanKind.CLIENT),
        ("chat backup", SpanKind.CLIENT),
        ("reliable_llm.request", SpanKind.INTERNAL),
        ("reliable_llm.request", SpanKind.INTERNAL),
    ]
    fail1, fail2, answer, request, hit = spans
    for child in (fail1, fail2, answer):
        assert child.parent is not None
        assert child.parent.span_id == request.context.span_id
        assert child.context.trace_id == request.context.trace_id
    assert hit.parent is None and hit.context.trace_id != request.context.trace_id

    stream = driver in ("stream", "astream")
    streamed = {"gen_ai.request.stream": True} if stream else {}
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "scripted",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 50,
        **streamed,
    }
    assert dict(fail1.attributes or {}) == {
        **common,
        "gen_ai.request.model": "primary",
        "error.type": "ServerError",
        "reliable_llm.model": "primary",
        "reliable_llm.attempt": 1,
    }
    assert dict(fail2.attributes or {})["reliable_llm.attempt"] == 2
    assert fail1.status.status_code is StatusCode.ERROR
    answered = {
        **common,
        "gen_ai.request.model": "backup",
        "gen_ai.response.model": "backup",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 4,
        "gen_ai.usage.output_tokens": 2,
        "reliable_llm.model": "backup",
        "reliable_llm.attempt": 1,
        "reliable_llm.cost": pytest.approx((4 * 3.0 + 2 * 6.0) / 1e6),
    }
    if stream:
        answered["gen_ai.response.time_to_first_chunk"] = 0.5
    assert dict(answer.attributes or {}) == answered
    assert answer.status.status_code is StatusCode.UNSET
    # Times are the manager's: the backup's call took 0.5 s on the fake clock, 1 s after start.
    assert answer.end_time is not None and answer.start_time is not None
    assert (answer.end_time - answer.start_time) == pytest.approx(0.5e9, abs=1e3)
    assert request.start_time is not None
    assert (answer.start_time - request.start_time) == pytest.approx(1e9, abs=1e3)

    assert dict(request.attributes or {}) == {
        "reliable_llm.request.model": "primary",
        "reliable_llm.response.model": "backup",
        "reliable_llm.route": ("primary", "backup"),
        "reliable_llm.outcome": "success",
        "reliable_llm.cache.hit": False,
        "reliable_llm.stream": stream,
        "reliable_llm.attempts": 3,
        "reliable_llm.retries": 1,
        "reliable_llm.fallback.models": ("primary",),
        "reliable_llm.fallback.reasons": ("retries_exhausted",),
        "reliable_llm.breaker.rejections": 0,
        "reliable_llm.timeout": exported.manager.timeouts.total,
        "reliable_llm.deadline_exceeded": False,
        "reliable_llm.cost": pytest.approx((4 * 3.0 + 2 * 6.0) / 1e6),
    }
    assert not any(k.startswith("gen_ai.") for k in request.attributes or {})
    assert dict(hit.attributes or {}) == {
        "reliable_llm.request.model": "primary",
        "reliable_llm.response.model": "backup",
        "reliable_llm.route": ("primary", "backup"),
        "reliable_llm.outcome": "success",
        "reliable_llm.cache.hit": True,
        "reliable_llm.stream": stream,
        "reliable_llm.attempts": 0,
        "reliable_llm.retries": 0,
        "reliable_llm.fallback.models": (),
        "reliable_llm.fallback.reasons": (),
        "reliable_llm.breaker.rejections": 0,
        "reliable_llm.timeout": exported.manager.timeouts.total,
        "reliable_llm.deadline_exceeded": False,
    }


def test_retry_fallback_then_cache_hit_metrics(clock: FakeClock) -> None:
    """Duration per attempt, tokens by type, and our retry, fallback, cache and cost counters
    carry the conventions' names, units, buckets and attributes."""
    exported = Exported(clock)
    exported.manager.chat(REQUEST, **PARAMS)
    exported.manager.chat(REQUEST, **PARAMS)
    metrics = exported.metrics()

    unit, *points = metrics["gen_ai.client.operation.duration"]
    assert unit == "s"
    by_model = {
        (p.attributes["gen_ai.request.model"], p.attributes.get("error.type")): p for p in points
    }
    assert by_model["primary", "ServerError"].count == 2
    ok = by_model["backup", None]
    assert (ok.count, ok.sum) == (1, 0.5)
    assert ok.explicit_bounds == reliable_llm.otel.DURATION_BUCKETS
    assert dict(ok.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "scripted",
        "gen_ai.request.model": "backup",
        "gen_ai.response.model": "backup",
    }

    unit, *points = metrics["gen_ai.client.token.usage"]
    assert unit == "{token}"
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in points}
    assert tokens == {"input": 4, "output": 2}
    assert points[0].explicit_bounds == reliable_llm.otel.TOKEN_BUCKETS

    def counted(name: str) -> dict[tuple[Any, ...], float]:
        _unit, *points = metrics[name]
        return {tuple(sorted(p.attributes.items())): p.value for p in points}

    assert counted("reliable_llm.retries") == {
        (("error.type", "ServerError"), ("reliable_llm.model", "primary")): 1
    }
    assert counted("reliable_llm.fallbacks") == {
        (
            ("reliable_llm.fallback.from", "primary"),
            ("reliable_llm.fallback.reason", "retries_exhausted"),
            ("reliable_llm.fallback.to", "backup"),
        ): 1
    }
    assert counted("reliable_llm.cache.misses") == {(("reliable_llm.model", "primary"),): 1}
    assert counted("reliable_llm.cache.hits") == {(("reliable_llm.model", "primary"),): 1}
    assert counted("reliable_llm.cost") == {
        (("reliable_llm.model", "backup"),): pytest.approx(24 / 1e6)
    }
    assert metrics["reliable_llm.cost"][0] == "{USD}"


def test_breaker_rejection_and_transitions_are_exported(clock: FakeClock) -> None:
    """A breaker that opens is counted as a transition, and a request skipping the open
    breaker says so on its request span."""
    exported = Exported(clock)
    manager = exported.manager
    for _ in range(3):  # 2 failed attempts a request: the default threshold of 5 is crossed
        manager.chat(f"q{_}")
    exported.spans.clear()
    manager.chat("after")
    (answer, request) = exported.finished()
    assert answer.name == "chat backup"
    attributes = dict(request.attributes or {})
    assert attributes["reliable_llm.breaker.rejections"] == 1
    assert attributes["reliable_llm.fallback.reasons"] == ("circuit_open",)
    _unit, *points = exported.metrics()["reliable_llm.breaker.transitions"]
    assert {(p.attributes["reliable_llm.breaker.state"], p.value) for p in points} == {("open", 1)}


def test_failed_request_span_is_an_error(clock: FakeClock) -> None:
    """A request no model answered ends its request span in error, with error.type."""
    exported = Exported(clock)
    exported.backup.default = ServerError("also down", status_code=500)
    with pytest.raises(AllModelsFailedError):
        exported.manager.chat("hi")
    request = exported.finished()[-1]
    assert request.name == "reliable_llm.request"
    assert request.status.status_code is StatusCode.ERROR
    assert dict(request.attributes or {})["error.type"] == "AllModelsFailedError"
    assert dict(request.attributes or {})["reliable_llm.outcome"] == "failure"


def test_content_only_when_opted_in(clock: FakeClock) -> None:
    """Messages appear on attempt spans only with capture_content=True, in the conventions'
    JSON shapes; by default no span holds the prompt or the answer."""
    quiet = Exported(clock)
    quiet.manager.chat(REQUEST, **PARAMS)
    for span in quiet.finished():
        text = json.dumps(dict(span.attributes or {}), default=str)
        assert "two words" not in text and "from backup" not in text

    loud = Exported(clock, capture_content=True)
    loud.manager.chat(REQUEST, **PARAMS)
    answer = loud.finished()[-2]
    attributes = dict(answer.attributes or {})
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "two words"}]}
    ]
    assert json.loads(str(attributes["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "be brief"}
    ]
    assert json.loads(str(attributes["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "from backup"}],
            "finish_reason": "stop",
        }
    ]


def test_uninstrument_stops_export(clock: FakeClock) -> None:
    """After uninstrument() no more spans are written, and the manager can be instrumented
    again; instrumenting it twice is a ConfigurationError saying what to do."""
    exported = Exported(clock)
    with pytest.raises(ConfigurationError, match=r"already instrumented.*uninstrument"):
        reliable_llm.otel.instrument(exported.manager, tracer_provider=TracerProvider())
    exported.hook.uninstrument()
    exported.manager.chat("one")
    assert exported.finished() == []
    again = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(again))
    reliable_llm.otel.instrument(exported.manager, tracer_provider=tracer_provider)
    exported.manager.chat("two")
    assert [s.name for s in again.get_finished_spans()][-1] == "reliable_llm.request"


def test_token_details_on_the_attempt_span(clock: FakeClock) -> None:
    """The provider's response id and its cache-read, cache-write and reasoning tokens
    appear under the conventions' names (semantic-conventions-genai: cache_write, the name
    that replaced cache_creation)."""
    exported = Exported(clock)
    usage = Usage(1000, 100, cache_read_tokens=800, cache_creation_tokens=50, reasoning_tokens=60)
    exported.manager.register_model(
        "detailed", ScriptedModel(default=ChatResponse("ok", usage=usage, response_id="chatcmpl-7"))
    )
    exported.manager.chat("hi", model="detailed")
    attributes = dict(exported.finished()[-2].attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == 100
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 800
    assert attributes["gen_ai.usage.cache_write.input_tokens"] == 50
    assert "gen_ai.usage.cache_creation.input_tokens" not in attributes
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 60
    assert attributes["gen_ai.response.id"] == "chatcmpl-7"


def test_captured_content_parts_follow_the_conventions_without_payloads(clock: FakeClock) -> None:
    """With capture_content, an image is a blob part (modality, mime type, hash, size) and a
    URL a uri part; the base64 payload itself never enters a span."""
    from reliable_llm import ImagePart, TextPart

    loud = Exported(clock, capture_content=True)
    image = ImagePart.from_bytes(b"\x89PNG" + b"\7" * 3000, "image/png")
    url = ImagePart(url="https://example.com/cat.png")
    loud.manager.chat([Message.user([TextPart("compare"), image, url])])

    spans_text = json.dumps([dict(s.attributes or {}) for s in loud.finished()], default=str)
    assert (image.data or "")[:64] not in spans_text
    attributes = dict(loud.finished()[-2].attributes or {})
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "compare"},
                {
                    "type": "blob",
                    "modality": "image",
                    "mime_type": "image/png",
                    "sha256": image.digest(),
                    "size": len(image.data or ""),
                },
                {
                    "type": "uri",
                    "modality": "image",
                    "mime_type": None,
                    "uri": "https://example.com/cat.png",
                },
            ],
        }
    ]
