"""ReliableChatModel's runs carry the request's reliability attributes in their metadata (what
LangSmith shows) and in the generation_info a callback handler reads."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run
from langchain_reliable_llm import ReliableChatModel

from reliable_llm import LLMManager, ServerError
from reliable_llm.testing import FakeClock, ScriptedModel


class RunRecorder(BaseTracer):
    """A tracer (LangSmith's base class) that keeps each finished run's metadata and the
    generation_info of its recorded outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.finished: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def _persist_run(self, run: Run) -> None:
        pass

    def _on_llm_end(self, run: Run) -> None:
        self.finished.append(dict(run.extra.get("metadata", {})))
        generation = (run.outputs or {})["generations"][0][0]
        self.outputs.append(dict(generation.get("generation_info") or {}))

    def _on_llm_error(self, run: Run) -> None:
        self.errors.append(dict(run.extra.get("metadata", {})))


class EndRecorder(BaseCallbackHandler):
    """A plain callback handler: what on_llm_end's result carries."""

    def __init__(self) -> None:
        self.infos: list[dict[str, Any]] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.infos.append(dict(response.generations[0][0].generation_info or {}))


def _model() -> tuple[ReliableChatModel, LLMManager]:
    manager = LLMManager(max_retries=1, clock=FakeClock(), random=lambda: 0.0)
    manager.register_model("primary", ScriptedModel(default=ServerError("down", status_code=503)))
    manager.register_model(
        "backup", ScriptedModel(default="fine"), metadata={"prices": {"input": 1.0, "output": 2.0}}
    )
    manager.set_fallback_chain(["backup"])
    return ReliableChatModel(manager=manager), manager


EXPECTED = {
    "reliable_llm.outcome": "success",
    "reliable_llm.response.model": "backup",
    "reliable_llm.route": ["primary", "backup"],
    "reliable_llm.cache.hit": False,
    "reliable_llm.attempts": 3,
    "reliable_llm.retries": 1,
    "reliable_llm.fallback.models": ["primary"],
    "reliable_llm.fallback.reasons": ["retries_exhausted"],
}


def _call(chat: ReliableChatModel, how: str, callbacks: list[Any]) -> None:
    config: Any = {"callbacks": callbacks, "metadata": {"user_key": 1}}
    if how == "invoke":
        chat.invoke("hi", config=config)
    elif how == "ainvoke":
        asyncio.run(chat.ainvoke("hi", config=config))
    elif how == "stream":
        list(chat.stream("hi", config=config))
    else:

        async def consume() -> None:
            async for _chunk in chat.astream("hi", config=config):
                pass

        asyncio.run(consume())


@pytest.mark.parametrize("how", ["invoke", "ainvoke"])
def test_run_metadata_names_the_fallback_and_why(how: str) -> None:
    """A traced run's metadata (kept beside the caller's own keys) says which model
    answered, what was given up and why, attempts, retries, cache and cost."""
    chat, _manager = _model()
    tracer = RunRecorder()
    _call(chat, how, [tracer])
    (metadata,) = tracer.finished
    assert metadata["user_key"] == 1
    assert {k: metadata[k] for k in EXPECTED} == EXPECTED
    assert metadata["reliable_llm.cost"] > 0  # the backup's prices times its usage


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "stream", "astream"])
def test_run_outputs_and_on_llm_end_carry_the_attributes(how: str) -> None:
    """Every driver's traced result carries the attributes in its generation_info: a plain
    callback handler's on_llm_end reads them, and a tracer records them with the run."""
    chat, _manager = _model()
    tracer, handler = RunRecorder(), EndRecorder()
    _call(chat, how, [tracer, handler])
    (info,) = handler.infos
    assert {k: info[k] for k in EXPECTED} == EXPECTED
    (recorded,) = tracer.outputs
    assert {k: recorded[k] for k in EXPECTED} == EXPECTED


def test_a_cache_hit_is_traced_as_one() -> None:
    """A repeated request's run says it was a cache hit, with no attempts."""
    chat, _manager = _model()
    chat.invoke("hi")
    tracer = RunRecorder()
    chat.invoke("hi", config={"callbacks": [tracer]})
    (metadata,) = tracer.finished
    assert metadata["reliable_llm.cache.hit"] is True
    assert metadata["reliable_llm.attempts"] == 0
    assert metadata["reliable_llm.response.model"] == "backup"


def test_a_failed_run_names_every_model_given_up() -> None:
    """When no model answers, the errored run's metadata lists the models given up and why."""
    chat, manager = _model()
    manager.register_model("backup", ScriptedModel(default=ServerError("x")), replace=True)
    tracer = RunRecorder()
    with pytest.raises(Exception, match="primary"):
        chat.invoke("hi", config={"callbacks": [tracer]})
    (metadata,) = tracer.errors
    assert metadata["reliable_llm.outcome"] == "failure"
    assert metadata["reliable_llm.response.model"] is None
    assert metadata["reliable_llm.fallback.models"] == ["primary", "backup"]
    assert metadata["reliable_llm.fallback.reasons"] == ["retries_exhausted"] * 2
    assert metadata["reliable_llm.attempts"] == 4


def test_per_call_route_is_the_one_tried() -> None:
    """A per-call model override is traced with the route it actually tried."""
    chat, _manager = _model()
    tracer = RunRecorder()
    chat.invoke("hi", config={"callbacks": [tracer]}, model="backup", fallbacks=[])
    (metadata,) = tracer.finished
    assert metadata["reliable_llm.route"] == ["backup"]
    assert metadata["reliable_llm.attempts"] == 1


@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_untraced_messages_carry_the_attributes_too(how: str) -> None:
    """Without any callback, the answer's response_metadata (invoke's message, a stream's
    last chunk) still says what was given up and why."""
    chat, _manager = _model()
    if how == "invoke":
        metadata = chat.invoke("hi").response_metadata
    else:
        metadata = list(chat.stream("hi"))[-1].response_metadata
    assert {k: metadata[k] for k in EXPECTED} == EXPECTED
