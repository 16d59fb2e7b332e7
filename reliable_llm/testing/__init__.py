"""Test kit for reliable-llm users and its own tests: a scripted model and a fake clock.

`FakeLLMServer` (a local HTTP server speaking the OpenAI and Anthropic wire formats) lives in
``reliable_llm.testing.fake_server``.
"""

from __future__ import annotations

from reliable_llm.testing._clock import FakeClock
from reliable_llm.testing._scripted import Reply, ScriptedModel, StreamBreak

__all__ = ["FakeClock", "Reply", "ScriptedModel", "StreamBreak"]
