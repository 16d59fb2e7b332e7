"""Fallback on bad answers: validators per model and per request, through every driver."""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from drivers import Ask, ask_with

from reliable_llm import (
    AllModelsFailedError,
    BreakerPolicy,
    ChatRequest,
    ChatResponse,
    ConfigurationError,
    EmptyResponseError,
    FailureReason,
    InvalidResponseError,
    LLMManager,
    Provider,
    RequestRejectedError,
    StreamChunk,
    StreamInterruptedError,
)
from reliable_llm.testing import FakeClock, ScriptedModel
from reliable_llm.validators import matches_schema, not_empty, not_refused, not_truncated

TRUNCATED = ChatResponse("The capital of Fra", finish_reason="length")
REFUSAL = ChatResponse("I can't help with that.", finish_reason="refusal")
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


@pytest.fixture(params=["sync", "async"])
def ask(request: pytest.FixtureRequest, manager: LLMManager) -> Ask:
    """The non-streaming drivers (a stream's answer is judged once its chunks were yielded:
    see the stream tests below)."""

    def call(messages: object, **kwargs: object) -> ChatResponse:
        return ask_with(str(request.param), manager, messages, **kwargs)

    return call


def _route(manager: LLMManager, first: ScriptedModel, **kwargs: object) -> ScriptedModel:
    backup = ScriptedModel(default="Paris")
    manager.register_model("primary", first, **kwargs)  # type: ignore[arg-type]
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    return backup


def test_a_truncated_answer_falls_back(manager: LLMManager, ask: Ask) -> None:
    """not_truncated() per request: a finish_reason "length" answer moves to the next model,
    and the rejected attempt says why."""
    primary = ScriptedModel(default=TRUNCATED)
    backup = _route(manager, primary)
    response = ask("Capital of France?", validators=[not_truncated()])
    assert (response.model, response.text) == ("backup", "Paris")
    assert (primary.call_count, backup.call_count) == (1, 1)
    assert response.fallback_from == ("primary",)
    rejected = response.attempts[0]
    assert rejected.model == "primary"
    assert isinstance(rejected.error, InvalidResponseError)
    assert rejected.error.reason == "truncated"
    assert manager.get_metrics()["invalid_responses"] == {
        "total": 1,
        "by_reason": {"truncated": 1},
    }
    assert manager.get_metrics()["fallbacks"]["by_reason"] == {"invalid_response": 1}


def test_a_rejected_answer_is_never_cached(manager: LLMManager, ask: Ask) -> None:
    """With no model left the request fails naming the reason; the bad answer was not stored,
    so the same request without validators goes upstream again."""
    primary = ScriptedModel(default=TRUNCATED)
    manager.register_model("primary", primary)
    with pytest.raises(AllModelsFailedError) as caught:
        ask("Capital of France?", validators=not_truncated())
    failure = caught.value.failures[0]
    assert failure.reason is FailureReason.INVALID_RESPONSE
    assert "primary: invalid_response after 1 attempt(s)" in str(caught.value)
    assert "truncated answer" in str(caught.value)
    assert manager.get_metrics()["cache"]["size"] == 0
    ask("Capital of France?")
    assert primary.call_count == 2


def test_model_validators_reject_an_empty_answer_without_blaming_the_breaker(
    manager: LLMManager, ask: Ask
) -> None:
    """not_empty() per model: a whitespace answer falls back; the model's breaker is untouched."""
    primary = ScriptedModel(default="  \n")
    _route(manager, primary, validators=[not_empty()])
    response = ask("hi")
    assert response.model == "backup"
    error = response.attempts[0].error
    assert isinstance(error, EmptyResponseError)
    assert error.reason == "empty"
    assert manager.get_model_info("primary")["breaker"]["failure_count"] == 0


def test_a_refusal_falls_back(manager: LLMManager, ask: Ask) -> None:
    """not_refused(): a finish_reason "refusal" answer moves to the next model."""
    _route(manager, ScriptedModel(default=REFUSAL))
    response = ask("hi", validators=[not_refused()])
    assert response.model == "backup"
    assert response.attempts[0].error.reason == "refusal"  # type: ignore[union-attr]


def test_a_rejection_counts_against_the_breaker_only_when_asked(
    manager: LLMManager, clock: FakeClock
) -> None:
    """counts_against_breaker=True: three rejected answers open a threshold-3 breaker."""
    primary = ScriptedModel(default=TRUNCATED)
    _route(
        manager,
        primary,
        validators=[not_truncated(counts_against_breaker=True)],
        breaker=BreakerPolicy(failure_threshold=3),
    )
    for i in range(3):
        assert manager.chat(f"q{i}").model == "backup"
    assert manager.get_model_info("primary")["breaker"]["state"] == "open"
    manager.chat("q4")
    assert primary.call_count == 3  # skipped while open


def test_structured_output_failing_its_schema_falls_back(manager: LLMManager, ask: Ask) -> None:
    """matches_schema(): non-JSON and wrong-typed answers fall back; messages never quote the
    answer's content."""
    good = json.dumps({"city": "Paris", "population": 2102650})
    manager.register_model("a", ScriptedModel(default="secret prose"))
    manager.register_model("b", ScriptedModel(default='{"city": "Paris", "population": "many"}'))
    manager.register_model("c", ScriptedModel(default=good))
    manager.set_fallback_chain(["b", "c"])
    response = ask("json please", validators=[matches_schema(SCHEMA)], use_cache=False)
    assert response.model == "c"
    assert json.loads(response.text)["population"] == 2102650
    not_json, wrong_type = (a.error for a in response.attempts[:2])
    assert "not JSON" in str(not_json) and "secret" not in str(not_json)
    assert "'type' failed at $.population" in str(wrong_type)
    assert "many" not in str(wrong_type)


def test_a_custom_validator_names_its_reason(manager: LLMManager, ask: Ask) -> None:
    """A user callable raising InvalidResponseError(reason=...) is counted by its reason and
    sees the answer as the caller would (registered model name)."""
    seen: list[str] = []

    def short(response: ChatResponse) -> None:
        seen.append(response.model)
        if len(response.text) > 10:
            raise InvalidResponseError("answer too long", reason="too_long")

    _route(manager, ScriptedModel(default="a very long answer indeed"))
    response = ask("hi", validators=short)
    assert response.model == "backup"
    assert seen == ["primary", "backup"]
    assert manager.get_metrics()["invalid_responses"]["by_reason"] == {"too_long": 1}


def test_a_broken_validator_is_the_callers_mistake(manager: LLMManager, ask: Ask) -> None:
    """A validator raising anything but InvalidResponseError: ConfigurationError naming it, no
    fallback, no breaker count, the attempt counted as cancelled."""

    def broken(response: ChatResponse) -> None:
        json.loads(response.text)

    backup = _route(manager, ScriptedModel(default="not json"))
    with pytest.raises(ConfigurationError, match=r"validator .*broken raised JSONDecodeError"):
        ask("hi", validators=[broken])
    assert backup.call_count == 0
    info = manager.get_model_info("primary")
    assert (info["breaker"]["failure_count"], info["cancelled_attempts"]) == (0, 1)


def test_a_cached_answer_must_pass_the_requests_validators(manager: LLMManager) -> None:
    """A truncated answer cached by a lax request is a miss for a strict one, which falls back."""
    primary = ScriptedModel(default=TRUNCATED)
    backup = _route(manager, primary)
    assert manager.chat("q").text == TRUNCATED.text  # cached ("length" answers are)
    assert manager.chat("q").cached
    assert manager.chat("q", validators=[not_empty()]).cached  # the same entry, accepted
    strict = manager.chat("q", validators=[not_truncated()])
    assert (strict.model, strict.cached) == ("backup", False)
    assert (primary.call_count, backup.call_count) == (2, 1)


async def test_an_async_backend_cache_hit_must_pass_the_validators(
    clock: FakeClock, tmp_path: Path
) -> None:
    """The same through a backend with async twins (SQLiteCache under achat)."""
    from reliable_llm.backends import SQLiteCache

    cache = SQLiteCache(str(tmp_path / "cache.db"))
    try:
        manager = LLMManager(clock=clock, cache_backend=cache)
        primary = ScriptedModel(default=TRUNCATED)
        backup = _route(manager, primary)
        assert (await manager.achat("q")).text == TRUNCATED.text
        assert (await manager.achat("q")).cached
        strict = await manager.achat("q", validators=[not_truncated()])
        assert (strict.model, strict.cached) == ("backup", False)
        assert (primary.call_count, backup.call_count) == (2, 1)
    finally:
        cache.close()


def test_a_stream_rejected_after_its_chunks_raises(manager: LLMManager) -> None:
    """A streamed answer rejected at its end cannot switch models mid-answer: the stream raises
    StreamInterruptedError (cause InvalidResponseError) and nothing is cached."""
    primary = ScriptedModel(default=TRUNCATED)
    backup = _route(manager, primary)
    stream = manager.stream("hi", validators=[not_truncated()])
    received = []
    with pytest.raises(StreamInterruptedError) as caught:
        for chunk in stream:
            received.append(chunk.text)
    assert "".join(received) == TRUNCATED.text == caught.value.partial_text
    assert isinstance(caught.value.__cause__, InvalidResponseError)
    assert stream.response is None
    assert backup.call_count == 0
    assert manager.get_metrics()["cache"]["size"] == 0


def test_an_async_stream_rejected_after_its_chunks_raises(manager: LLMManager) -> None:
    """The async twin: astream raises StreamInterruptedError after the rejected answer."""
    backup = _route(manager, ScriptedModel(default=REFUSAL))

    async def consume() -> None:
        async for _chunk in manager.astream("hi", validators=[not_refused()]):
            pass

    with pytest.raises(StreamInterruptedError, match="refusal"):
        asyncio.run(consume())
    assert backup.call_count == 0


class _Silent(Provider):
    """A model whose stream ends without a single chunk."""

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        return ChatResponse("")

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        return ChatResponse("")

    def stream(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> Iterator[StreamChunk]:
        return iter(())


def test_a_stream_rejected_before_any_chunk_falls_back(manager: LLMManager) -> None:
    """Nothing reached the caller yet: a rejected stream moves to the next model."""
    manager.register_model("silent", _Silent(), validators=[not_empty()])
    manager.register_model("backup", ScriptedModel(default="Paris"))
    manager.set_fallback_chain(["backup"])
    stream = manager.stream("hi")
    assert "".join(chunk.text for chunk in stream) == "Paris"
    assert stream.response is not None and stream.response.fallback_from == ("silent",)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (42, "validators must be a callable validator"),
        ([not_truncated], r"not_truncated builds a validator; call it: not_truncated\(\)"),
        ([not_empty(), ChatResponse], "validators must hold validator instances"),
        ("not_truncated", "validators must be a callable validator"),
    ],
)
def test_bad_validators_are_configuration_errors(
    manager: LLMManager, value: object, match: str
) -> None:
    """Per request and per model, a non-validator is rejected at once, naming the parameter."""
    manager.register_model("m", ScriptedModel())
    with pytest.raises(ConfigurationError, match=match):
        manager.chat("hi", validators=value)
    with pytest.raises(ConfigurationError, match=match):
        manager.register_model("n", ScriptedModel(), validators=value)  # type: ignore[arg-type]


def test_an_async_validator_is_rejected(manager: LLMManager) -> None:
    """Validators run synchronously on the answer: an async def is a ConfigurationError."""

    async def check(response: ChatResponse) -> None:
        return None

    class Check:
        async def __call__(self, response: ChatResponse) -> None:
            return None

    manager.register_model("m", ScriptedModel())
    for bad in (check, Check(), Check()):  # the second instance: the per-type answer
        with pytest.raises(ConfigurationError, match="is an async function"):
            manager.chat("hi", validators=[bad])


def test_an_invalid_schema_is_rejected_at_once() -> None:
    """matches_schema() checks the schema itself when built."""
    with pytest.raises(ConfigurationError, match="not a valid JSON Schema"):
        matches_schema({"type": "no-such-type"})
    with pytest.raises(ConfigurationError, match="needs a JSON Schema dict"):
        matches_schema("object")  # type: ignore[arg-type]


def test_invalid_response_error_keeps_its_reason() -> None:
    """The error tree: a request rejection, breaker neutral by default; reason survives pickle."""
    error = InvalidResponseError("bad", reason="schema")
    assert isinstance(error, RequestRejectedError) and not error.retryable
    assert not error.counts_against_breaker
    assert InvalidResponseError("bad", counts_against_breaker=True).counts_against_breaker
    assert not InvalidResponseError.counts_against_breaker
    assert pickle.loads(pickle.dumps(error)).reason == "schema"
    assert issubclass(EmptyResponseError, InvalidResponseError)
    assert EmptyResponseError("empty").reason == "empty"
    assert repr(not_truncated()) == "not_truncated()"


def test_generate_takes_validators_too(manager: LLMManager) -> None:
    """generate(prompt, validators=...) falls back like chat; the keyword is never sent on."""
    seen: list[dict[str, object]] = []

    def backup(prompt: str, **kwargs: object) -> str:
        seen.append(kwargs)
        return "Paris"

    manager.register_model("primary", ScriptedModel(default=TRUNCATED))
    manager.register_model("backup", backup)
    manager.set_fallback_chain(["backup"])
    assert manager.generate("Capital?", validators=[not_truncated()]) == "Paris"
    assert seen == [{}]


def test_a_rejected_trial_answer_frees_the_trial_without_closing_or_reopening(
    manager: LLMManager, clock: FakeClock
) -> None:
    """A half-open trial whose answer is rejected is neutral: the breaker stays half-open and
    the next request may take the trial again."""
    primary = ScriptedModel([RuntimeError("outage")], default=TRUNCATED)
    manager.register_model(
        "primary",
        primary,
        breaker=BreakerPolicy(failure_threshold=1, recovery_timeout=10),
        validators=[not_truncated()],
    )
    manager.register_model("backup", ScriptedModel(default="Paris"))
    manager.set_fallback_chain(["backup"])
    manager.chat("q0", use_cache=False)
    assert manager.get_model_info("primary")["breaker"]["state"] == "open"
    clock.advance(10)
    for i in (1, 2):
        assert manager.chat(f"q{i}", use_cache=False).model == "backup"
        assert manager.get_model_info("primary")["breaker"]["state"] == "half-open"
    assert primary.call_count == 3  # the outage, then one trial per request
