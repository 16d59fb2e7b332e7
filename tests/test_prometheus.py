"""Prometheus export: the exposition text a scrape sees after retries, a fallback and a hit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import reliable_llm.prometheus
from reliable_llm import AllModelsFailedError, LLMManager, ServerError
from reliable_llm.testing import FakeClock, Reply, ScriptedModel


def _manager(clock: FakeClock, registry: CollectorRegistry) -> LLMManager:
    manager = LLMManager(max_retries=1, clock=clock, random=lambda: 0.0)
    manager.register_model("primary", ScriptedModel(default=ServerError("down", status_code=503)))
    manager.register_model(
        "backup",
        ScriptedModel(default=Reply("from backup", latency=0.5), clock=clock),
        metadata={"prices": {"input": 3.0, "output": 6.0}},
    )
    manager.set_fallback_chain(["backup"])
    reliable_llm.prometheus.instrument(manager, registry=registry)
    return manager


def _samples(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    return {line for line in text.splitlines() if line and not line.startswith("#")}


def test_scrape_after_retry_fallback_and_cache_hit(clock: FakeClock) -> None:
    """A scrape shows the request outcomes, each attempt with its error type, the retry, the
    fallback pair, the cache hit and miss, tokens, cost and breaker states."""
    registry = CollectorRegistry()
    manager = _manager(clock, registry)
    manager.generate("two words")
    manager.generate("two words")
    samples = _samples(registry)
    expected = {
        'reliable_llm_requests_total{outcome="success"} 2.0',
        'reliable_llm_attempts_total{error_type="ServerError",model="primary",'
        'outcome="failure"} 2.0',
        'reliable_llm_attempts_total{error_type="none",model="backup",outcome="success"} 1.0',
        'reliable_llm_retries_total{error_type="ServerError",model="primary"} 1.0',
        'reliable_llm_fallbacks_total{from_model="primary",reason="retries_exhausted",'
        'to_model="backup"} 1.0',
        'reliable_llm_cache_hits_total{model="primary"} 1.0',
        'reliable_llm_cache_misses_total{model="primary"} 1.0',
        'reliable_llm_tokens_total{model="backup",type="input"} 2.0',
        'reliable_llm_tokens_total{model="backup",type="output"} 2.0',
        'reliable_llm_cost_total{model="backup"} 1.8e-05',
        'reliable_llm_breaker_state{model="primary",state="closed"} 1.0',
        'reliable_llm_breaker_state{model="primary",state="open"} 0.0',
        'reliable_llm_attempt_duration_seconds_bucket{le="0.64",model="backup",outcome="success"}'
        " 1.0",
        'reliable_llm_attempt_duration_seconds_bucket{le="0.32",model="backup",outcome="success"}'
        " 0.0",
        'reliable_llm_attempt_duration_seconds_sum{model="backup",outcome="success"} 0.5',
        'reliable_llm_request_duration_seconds_count{outcome="success"} 1.0',
        'reliable_llm_request_duration_seconds_sum{outcome="success"} 1.5',
    }
    assert expected <= samples, sorted(expected - samples)


def test_breaker_gauge_follows_transitions_and_failures_count(clock: FakeClock) -> None:
    """Once a model's breaker opens the gauge says so, and unanswered requests count as
    failures."""
    registry = CollectorRegistry()
    manager = _manager(clock, registry)
    manager.set_fallback_chain([])
    for n in range(3):
        with pytest.raises(AllModelsFailedError):
            manager.generate(f"q{n}", use_cache=False)
    samples = _samples(registry)
    assert 'reliable_llm_breaker_state{model="primary",state="open"} 1.0' in samples
    assert 'reliable_llm_breaker_state{model="primary",state="closed"} 0.0' in samples
    assert 'reliable_llm_requests_total{outcome="failure"} 3.0' in samples


def test_two_managers_share_one_registry(clock: FakeClock) -> None:
    """Instrumenting a second manager on the same registry adds to the same series."""
    registry = CollectorRegistry()
    for _ in range(2):
        _manager(clock, registry).generate("hello there")
    assert 'reliable_llm_requests_total{outcome="success"} 2.0' in _samples(registry)


def test_multiprocess_mode(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set, two worker processes' counts add up in a scrape
    through prometheus_client's MultiProcessCollector."""
    worker = textwrap.dedent(
        """
        import reliable_llm.prometheus
        from reliable_llm import LLMManager
        manager = LLMManager()
        manager.register_model("m", lambda prompt, **kw: "ok")
        reliable_llm.prometheus.instrument(manager)
        manager.generate("hi")
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], env=env, check=True, timeout=60)
    scrape = textwrap.dedent(
        """
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        print(generate_latest(registry).decode())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", scrape], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'reliable_llm_requests_total{outcome="success"} 2.0' in out
    assert 'reliable_llm_attempts_total{error_type="none",model="m",outcome="success"} 2.0' in out
