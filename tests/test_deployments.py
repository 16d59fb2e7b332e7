"""Deployment groups: one registered name served by several deployments, each with its own
breaker and metrics; strategies, hand-over inside the group, draining a failing deployment."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest

from reliable_llm import (
    AllModelsFailedError,
    BreakerPolicy,
    ChatResponse,
    ConfigurationError,
    Deployment,
    FailureReason,
    LLMManager,
    ServerError,
    UnknownModelError,
    Usage,
)
from reliable_llm.events import CacheHit, Event
from reliable_llm.providers import OpenAIProvider
from reliable_llm.testing import FakeClock, Reply, ScriptedModel
from reliable_llm.testing.fake_server import FakeLLMServer, server_error


def _manager(clock: FakeClock, seed: int = 15, **kwargs: Any) -> LLMManager:
    return LLMManager(
        clock=clock, random=random.Random(seed).random, enable_caching=False, **kwargs
    )


def test_weighted_group_spreads_10000_requests_by_weight(clock: FakeClock) -> None:
    """10,000 requests split over weights 1:2:3:4 pass a chi-square test (p = 0.001)."""
    manager = _manager(clock)
    weights = [1, 2, 3, 4]
    manager.register_model(
        "gpt-4o",
        [Deployment(ScriptedModel(default=f"d{i}"), weight=w) for i, w in enumerate(weights)],
    )
    served = Counter(manager.chat("hi").model for _ in range(10_000))
    expected = {f"gpt-4o[{i}]": 10_000 * w / sum(weights) for i, w in enumerate(weights)}
    chi_square = sum((served[k] - e) ** 2 / e for k, e in expected.items())
    assert set(served) == set(expected)
    assert chi_square < 16.27  # the 0.999 quantile of chi-square with 3 degrees of freedom


def test_the_same_seed_gives_the_same_picks(clock: FakeClock) -> None:
    """With a seeded `random=`, a group picks the same deployments run after run."""

    def picks() -> list[str]:
        manager = _manager(FakeClock(), seed=7)
        manager.register_model("g", [ScriptedModel(), ScriptedModel(), ScriptedModel()])
        return [manager.chat("hi").model for _ in range(50)]

    first = picks()
    assert first == picks()
    assert len(set(first)) == 3


def test_a_plain_model_keeps_its_name_and_its_precomputed_route(clock: FakeClock) -> None:
    """A single-provider registration answers under its own name with the route precomputed."""
    manager = _manager(clock)
    manager.register_model("m", ScriptedModel())
    assert manager._registry.route and manager.chat("hi").model == "m"
    assert "deployments" not in manager.get_model_info("m")
    assert manager.get_metrics()["deployment_groups"] == {}


def test_a_failed_deployment_hands_over_to_each_sibling_once_then_the_next_name(
    clock: FakeClock,
) -> None:
    """Every deployment is tried once, in turn, before the route moves to the fallback."""
    manager = _manager(clock, max_retries=0)
    manager.register_model("g", [ScriptedModel(default=ServerError("down")) for _ in range(3)])
    manager.register_model("backup", ScriptedModel(default="from backup"))
    manager.set_fallback_chain(["backup"])
    response = manager.chat("hi")
    assert response.text == "from backup"
    assert sorted(response.fallback_from) == ["g[0]", "g[1]", "g[2]"]
    assert [a.model for a in response.attempts].count("backup") == 1
    assert len(response.attempts) == 4


def test_the_hand_over_order_follows_the_first_pick(clock: FakeClock) -> None:
    """A request that starts at deployment 2 of 3 hands over to 0, then 1."""
    manager = LLMManager(clock=clock, random=lambda: 0.99, enable_caching=False, max_retries=0)
    manager.register_model("g", [ScriptedModel(default=ServerError("down")) for _ in range(3)])
    with pytest.raises(AllModelsFailedError) as caught:
        manager.chat("hi")
    assert [f.model for f in caught.value.failures] == ["g[2]", "g[0]", "g[1]"]


@pytest.mark.parametrize("driver", ["sync", "async", "stream", "astream"])
def test_every_driver_serves_a_group(driver: str, clock: FakeClock) -> None:
    """chat, achat, stream and astream all answer from a deployment and name it."""
    from drivers import ask_with

    manager = _manager(clock, max_retries=0)
    manager.register_model(
        "g", [ScriptedModel(default=ServerError("down")), ScriptedModel(default="fine")]
    )
    response = ask_with(driver, manager, "hi")
    assert response.text == "fine" and response.model == "g[1]"


def test_a_group_is_cached_and_single_flighted_under_its_own_name(clock: FakeClock) -> None:
    """Whichever deployment answered, a repeat is a cache hit for the group's name."""
    events: list[Event] = []
    manager = LLMManager(clock=clock, random=random.Random(1).random, hooks=[events.append])
    models = [ScriptedModel(default="same"), ScriptedModel(default="same")]
    manager.register_model("g", models)
    first = manager.chat("hi")
    second = manager.chat("hi")
    assert second.cached and second.text == first.text
    assert sum(m.call_count for m in models) == 1
    assert [e for e in events if isinstance(e, CacheHit)] == [CacheHit("g", first.model)]


def test_a_deployment_that_starts_failing_drains_to_its_siblings() -> None:
    """Over the fake server: once east's breaker opens, west and north serve every request."""
    clock = FakeClock()
    manager = _manager(clock, seed=3, max_retries=0, breaker=BreakerPolicy(5, 60.0))
    with FakeLLMServer() as server:

        def deployment(model: str) -> Deployment:
            provider = OpenAIProvider(model, api_key="sk-test", base_url=server.openai_base_url)
            return Deployment(provider, name=model)

        manager.register_model("gpt-4o", [deployment(m) for m in ("east", "west", "north")])
        for _ in range(60):
            manager.chat("hi")
        assert server.request_count("east") > 10  # east took its share while healthy
        server.set_default("east", server_error())
        before = server.request_count("east")
        served = Counter(manager.chat("hi").model for _ in range(300))
        east_calls = server.request_count("east") - before
    assert sum(served.values()) == 300  # no request failed
    assert east_calls == 5  # the failures that opened its breaker; none after
    assert served["gpt-4o[east]"] == 0
    assert min(served["gpt-4o[west]"], served["gpt-4o[north]"]) > 120  # shared by weight
    info = manager.get_model_info("gpt-4o")
    assert info["breaker"]["states"]["gpt-4o[east]"] == "open"
    assert info["deployments"]["gpt-4o[east]"]["failure_count"] == 5
    assert manager.get_metrics()["models"]["gpt-4o[east]"]["breaker_state"] == "open"


def test_a_recovered_deployment_gets_its_share_back(clock: FakeClock) -> None:
    """After the recovery time one request takes the trial; once closed, picks include it."""
    manager = _manager(clock, max_retries=0, breaker=BreakerPolicy(1, 30.0))
    flaky = ScriptedModel([ServerError("down")], default="back")
    manager.register_model("g", [flaky, ScriptedModel(default="steady")])
    while flaky.call_count == 0:
        manager.chat("hi")
    assert manager.get_model_info("g[0]")["breaker"]["state"] == "open"
    assert {manager.chat("hi").model for _ in range(40)} == {"g[1]"}
    clock.advance(30.0)
    served = Counter(manager.chat("hi").model for _ in range(200))
    assert manager.get_model_info("g[0]")["breaker"]["state"] == "closed"
    assert served["g[0]"] > 60


def test_least_in_flight_sends_a_request_to_the_idle_deployment() -> None:
    """With two deployments busy, the third request goes to the idle one."""
    release = asyncio.Event()

    async def busy(prompt: str, **kwargs: Any) -> str:
        await release.wait()
        return "busy"

    async def scenario() -> tuple[list[str], str]:
        manager = LLMManager(random=lambda: 0.0, enable_caching=False)
        manager.register_model("g", [busy, busy, busy], strategy="least_in_flight")
        first = [asyncio.create_task(manager.achat(f"q{i}")) for i in range(2)]
        for _ in range(5):
            await asyncio.sleep(0)
        states = manager.get_model_info("g")["deployments"]
        third = asyncio.create_task(manager.achat("q3"))
        for _ in range(5):
            await asyncio.sleep(0)
        in_flight = [states[k]["bulkhead"]["in_flight"] for k in sorted(states)]
        assert in_flight == [1, 1, 0]  # the first two went to different deployments
        release.set()
        answers = await asyncio.gather(*first, third)
        return sorted(a.model for a in answers[:2]), answers[2].model

    busy_ones, third = asyncio.run(scenario())
    assert busy_ones == ["g[0]", "g[1]"] and third == "g[2]"


def test_lowest_latency_prefers_the_fastest_but_still_explores(clock: FakeClock) -> None:
    """Most requests go to the fastest deployment; the others are still measured now and then."""
    manager = _manager(clock, seed=11)
    models = [ScriptedModel(latency=s, clock=clock) for s in (0.5, 0.1, 0.3)]
    manager.register_model("g", models, strategy="lowest_latency")
    served = Counter(manager.chat("hi").model for _ in range(1000))
    assert served["g[1]"] > 900
    assert served["g[0]"] > 0 and served["g[2]"] > 0  # exploration
    latency = manager.get_model_info("g[1]")["latency_average"]
    assert latency == pytest.approx(0.1)


def test_lowest_latency_measures_a_recovered_deployment_again(clock: FakeClock) -> None:
    """The fastest deployment, after failing and recovering, wins its traffic back."""
    manager = _manager(clock, seed=5, max_retries=0, breaker=BreakerPolicy(1, 10.0))
    fast = ScriptedModel(latency=0.1, clock=clock)
    manager.register_model(
        "g", [fast, ScriptedModel(latency=0.4, clock=clock)], strategy="lowest_latency"
    )
    for _ in range(20):
        manager.chat("hi")
    fast.push(ServerError("down"))
    while manager.get_model_info("g[0]")["breaker"]["state"] != "open":
        manager.chat("hi")
    clock.advance(10.0)
    served = Counter(manager.chat("hi").model for _ in range(200))
    assert served["g[0]"] > 150


def test_lowest_usage_balances_tokens_over_the_minute(clock: FakeClock) -> None:
    """Each request goes to the deployment with the fewest tokens in the last minute."""
    manager = _manager(clock)

    def heavy(tokens: int) -> ScriptedModel:
        return ScriptedModel(default=ChatResponse("x", usage=Usage(tokens, 0)))

    manager.register_model("g", [heavy(100), heavy(100), heavy(300)], strategy="lowest_usage")
    for _ in range(50):
        manager.chat("hi")
    tokens = [manager.get_model_info(f"g[{i}]")["rate_limits"]["tokens"] for i in range(3)]
    assert max(tokens) - min(tokens) <= 300
    clock.advance(60.0)  # the window slides: nothing counted any more
    assert manager.get_model_info("g[0]")["rate_limits"]["tokens"] == 0


def test_group_info_and_metrics_show_each_deployment(clock: FakeClock) -> None:
    """get_model_info of a group sums its deployments and lists each; ids work alone too."""
    manager = _manager(clock)
    manager.register_model(
        "g",
        [Deployment(ScriptedModel(), name="eu", weight=2, rpm=100), ScriptedModel()],
        metadata={"context_window": 128_000},
    )
    for _ in range(10):
        manager.chat("hi")
    info = manager.get_model_info("g")
    assert set(info["deployments"]) == {"g[eu]", "g[1]"}
    assert (
        info["requests_served"]
        == 10
        == sum(d["requests_served"] for d in info["deployments"].values())
    )
    eu = manager.get_model_info("g[eu]")
    assert eu["group"] == "g" and eu["weight"] == 2.0
    assert eu["rate_limits"]["rpm"] == 100 and eu["metadata"] == {"context_window": 128_000}
    metrics = manager.get_metrics()
    assert metrics["deployment_groups"] == {"g": ["g[eu]", "g[1]"]}
    assert set(metrics["models"]) == {"g[eu]", "g[1]"}
    assert manager.list_models() == ["g"]


def test_reset_circuit_breaker_of_a_group_closes_every_deployment(clock: FakeClock) -> None:
    """reset_circuit_breaker("g") closes all of g's deployments."""
    manager = _manager(clock, max_retries=0, breaker=BreakerPolicy(1, 60.0))
    manager.register_model("g", [ScriptedModel(default=ServerError("x")) for _ in range(2)])
    with pytest.raises(AllModelsFailedError):
        manager.chat("hi")
    assert set(manager.get_model_info("g")["breaker"]["states"].values()) == {"open"}
    manager.reset_circuit_breaker("g")
    assert set(manager.get_model_info("g")["breaker"]["states"].values()) == {"closed"}


def test_replacing_a_group_stops_reporting_its_deployments(clock: FakeClock) -> None:
    """A group replaced by a plain model leaves no stale deployments in the metrics."""
    manager = _manager(clock)
    manager.register_model("g", [ScriptedModel(), ScriptedModel()])
    manager.register_model("g", ScriptedModel(default="plain"), replace=True)
    assert set(manager.get_metrics()["models"]) == {"g"}
    assert manager.chat("hi").model == "g"
    with pytest.raises(UnknownModelError):
        manager.get_model_info("g[0]")


@pytest.mark.parametrize(
    ("models", "kwargs", "message"),
    [
        ([], {}, "at least one deployment"),
        ([ScriptedModel()], {"strategy": "round_robin"}, "strategy must be one of"),
        (
            [Deployment(ScriptedModel(), name="a"), Deployment(ScriptedModel(), name="a")],
            {},
            "used more than once",
        ),
        (ScriptedModel(), {"strategy": "weighted"}, "applies to a deployment group"),
    ],
)
def test_bad_groups_are_clear_configuration_errors(
    models: Any, kwargs: dict[str, Any], message: str, clock: FakeClock
) -> None:
    """An empty group, an unknown strategy, repeated names, strategy for one model: clear errors."""
    manager = _manager(clock)
    with pytest.raises(ConfigurationError, match=message):
        manager.register_model("g", models, **kwargs)
    assert manager.list_models() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": 0}, "weight must be a finite number > 0"),
        ({"weight": float("nan")}, "weight must be a finite number > 0"),
        ({"rpm": 0}, "rpm must be a positive int"),
        ({"tpm": 1.5}, "tpm must be a positive int"),
        ({"max_concurrent_calls": -1}, "max_concurrent_calls must be a positive int"),
        ({"name": "a b"}, "Deployment name must be"),
    ],
)
def test_bad_deployment_values_name_the_parameter(kwargs: dict[str, Any], message: str) -> None:
    """Deployment(...) rejects out-of-range values at construction, naming the parameter."""
    with pytest.raises(ConfigurationError, match=message):
        Deployment(ScriptedModel(), **kwargs)


def test_a_deployment_id_cannot_shadow_a_model_name(clock: FakeClock) -> None:
    """Registering a model named like an existing deployment id is refused, and vice versa."""
    manager = _manager(clock)
    manager.register_model("g", [ScriptedModel()])
    with pytest.raises(ConfigurationError, match="is the id of a deployment"):
        manager.register_model("g[0]", ScriptedModel())
    manager.register_model("h[0]", ScriptedModel())
    with pytest.raises(ConfigurationError, match="is a registered model name"):
        manager.register_model("h", [ScriptedModel()])


def test_failure_reasons_stay_the_documented_set() -> None:
    """The new reasons a deployment can be given up for are part of FailureReason."""
    assert FailureReason("rate_limited_locally") is FailureReason.RATE_LIMITED_LOCALLY
    assert FailureReason("bulkhead_full") is FailureReason.BULKHEAD_FULL


def test_scripted_reply_latency_counts_as_the_deployment_latency(clock: FakeClock) -> None:
    """A deployment's latency average is the decaying mean of its calls' durations."""
    manager = _manager(clock)
    model = ScriptedModel([Reply("a", latency=1.0)], default=Reply("b", latency=2.0), clock=clock)
    manager.register_model("g", [model], strategy="lowest_latency")
    manager.chat("one")
    assert manager.get_model_info("g[0]")["latency_average"] == pytest.approx(1.0)
    manager.chat("two")
    assert manager.get_model_info("g[0]")["latency_average"] == pytest.approx(1.3)


def test_readme_deployment_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's deployment-group example runs as written and prints what it says."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Deployment groups, rate limits and bulkheads", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    exec(compile(code, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] in ("gpt-4o[eastus]", "gpt-4o[westus]")
    assert lines[1] == "{'gpt-4o': ['gpt-4o[eastus]', 'gpt-4o[westus]']}"
    assert lines[2:] == ["600", "rpm 60"]


def test_prometheus_reports_each_deployment_breaker(clock: FakeClock) -> None:
    """The Prometheus breaker gauge has one series per deployment, none for the group."""
    from prometheus_client import CollectorRegistry

    import reliable_llm.prometheus

    manager = _manager(clock)
    manager.register_model("g", [ScriptedModel(), ScriptedModel()])
    registry = CollectorRegistry()
    reliable_llm.prometheus.instrument(manager, registry=registry)
    manager.chat("hi")
    models = {
        sample.labels["model"]
        for metric in registry.collect()
        if metric.name == "reliable_llm_breaker_state"
        for sample in metric.samples
    }
    assert models == {"g[0]", "g[1]"}


def test_a_group_later_in_the_route_serves_after_the_primary_fails(clock: FakeClock) -> None:
    """Route primary -> group: the primary's failure falls back to one of the deployments."""
    manager = _manager(clock, max_retries=0)
    manager.register_model("primary", ScriptedModel(default=ServerError("down")))
    manager.register_model("g", [ScriptedModel(default="g0"), ScriptedModel(default="g1")])
    manager.set_fallback_chain(["g"])
    assert manager.route == ("primary", "g")
    served = Counter(manager.chat("hi").model for _ in range(40))
    assert set(served) == {"g[0]", "g[1]"}
    assert manager.get_metrics()["fallbacks"]["total"] == 40


def test_closing_the_manager_closes_every_deployment(clock: FakeClock) -> None:
    """close() and aclose() reach each deployment's provider, gated or not."""

    class Closable(ScriptedModel):
        def __init__(self) -> None:
            super().__init__()
            self.closed = 0

        def close(self) -> None:
            self.closed += 1

    models = [Closable(), Closable()]
    manager = _manager(clock)
    manager.register_model("g", [models[0], Deployment(models[1], rpm=10)])
    manager.close()
    asyncio.run(manager.aclose())
    assert [m.closed for m in models] == [2, 2]


def test_a_transient_failure_hands_over_to_a_sibling_without_backoff(clock: FakeClock) -> None:
    """A 503 on one deployment goes to the next at once; no retry waits on the failing one."""
    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False, max_retries=3)
    manager.register_model(
        "g", [ScriptedModel([ServerError("503")], default="zero"), ScriptedModel(default="one")]
    )
    response = manager.chat("hi")
    assert response.text == "one" and clock.sleeps == []
    assert [(a.model, a.error is None) for a in response.attempts] == [
        ("g[0]", False),
        ("g[1]", True),
    ]
    assert manager.get_metrics()["fallbacks"]["by_reason"] == {"handed_over": 1}


def test_the_last_deployment_standing_keeps_its_retries(clock: FakeClock) -> None:
    """With every sibling tried, the last deployment retries with backoff as a model would."""
    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False, max_retries=2)
    down = ServerError("503")
    manager.register_model(
        "g", [ScriptedModel(default=down), ScriptedModel([down, down], default="back")]
    )
    response = manager.chat("hi", timeout=60)
    assert response.text == "back"
    assert [a.model for a in response.attempts] == ["g[0]", "g[1]", "g[1]", "g[1]"]
    assert len(clock.sleeps) == 2  # g[1]'s two backoffs; none on g[0]


def test_no_hand_over_to_a_sibling_whose_breaker_is_open(clock: FakeClock) -> None:
    """When the sibling is open, the failing deployment retries instead of handing over."""
    manager = LLMManager(
        clock=clock,
        random=lambda: 0.999,  # picks the last eligible deployment first
        enable_caching=False,
        max_retries=1,
        breaker=BreakerPolicy(2, 600.0),
    )
    flaky = ScriptedModel(default="recovered")
    manager.register_model("g", [flaky, ScriptedModel(default=ServerError("down"))])
    for _ in range(2):  # g[1] fails first each time and hands over; the second opens it
        assert manager.chat("hi").text == "recovered"
    assert manager.get_model_info("g[1]")["breaker"]["state"] == "open"
    flaky.push(ServerError("blip"))
    response = manager.chat("hi")
    assert response.text == "recovered"
    assert [a.model for a in response.attempts] == ["g[0]", "g[0]"]
    assert len(clock.sleeps) == 1


def test_traced_group_ends_every_span_and_names_each_deployment(clock: FakeClock) -> None:
    """Under OpenTelemetry, a refused call's span is closed as an error and the answering
    deployment's CLIENT span carries its id; nothing is left open."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import reliable_llm.otel

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
    manager.register_model("g", [Deployment(ScriptedModel(), rpm=1), ScriptedModel()])
    reliable_llm.otel.instrument(manager, tracer_provider=tracer_provider)
    assert manager.chat("one").model == "g[0]"
    assert manager.chat("two").model == "g[1]"  # g[0] refused the call locally
    names = [s.name for s in spans.get_finished_spans()]
    assert names.count("reliable_llm.request") == 2
    client = [s for s in spans.get_finished_spans() if s.name != "reliable_llm.request"]
    assert [(s.name, (s.attributes or {}).get("error.type")) for s in client] == [
        ("chat g[0]", None),
        ("chat g[0]", "CapacityExceeded"),
        ("chat g[1]", None),
    ]


def test_a_deployment_that_cannot_take_an_image_hands_over_to_one_that_can(
    clock: FakeClock,
) -> None:
    """Capabilities are per deployment: a text-only deployment is skipped for its sibling."""
    from reliable_llm import ImagePart, Message, TextPart

    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
        "RU5ErkJggg=="
    )
    manager = LLMManager(clock=clock, random=lambda: 0.0, enable_caching=False)
    manager.register_model(
        "g",
        [lambda prompt: "blind", ScriptedModel(default="a pixel")],  # text only, then vision
    )
    response = manager.chat(
        [Message.user([TextPart("What is this?"), ImagePart(url=f"data:image/png;base64,{png}")])]
    )
    assert (response.text, response.fallback_from) == ("a pixel", ("g[0]",))
    assert manager.get_model_info("g[0]")["breaker"]["failure_count"] == 0
