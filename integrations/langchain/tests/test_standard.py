"""LangChain's standard chat-model suites, run offline against in-process models.

The multimodal and Anthropic-input tests run (``supports_*`` below): `SmartFakeModel` takes
every content part, and the suite's downloads are served locally (``offline_standard_media``).
Skips that remain come from the standard suites themselves, for features we truly lack:
- ``test_serdes``: the model holds live providers and a manager, so it is not
  LangChain-serializable (``is_lc_serializable()`` is False);
- ``test_init_from_env``: the model reads no environment variables (credentials belong to
  the wrapped providers);
- ``test_stream_time``: a VCR benchmark of recorded HTTP traffic; these models make none.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_reliable_llm import ReliableChatModel
from langchain_reliable_llm.testing import SmartFakeModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from reliable_llm import ServerError
from reliable_llm.testing import FakeClock, ScriptedModel

pytestmark = pytest.mark.usefixtures("offline_standard_media")


class _ContentSuite(ChatModelIntegrationTests):
    """The integration suite with every content test on: images (base64 and URL), PDFs,
    audio, images and PDFs in tool results, Anthropic-native inputs."""

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True


class TestReliableChatModelUnit(ChatModelUnitTests):
    """The standard unit suite, with a manager built from plain parameters."""

    @property
    def chat_model_class(self) -> type[ReliableChatModel]:
        return ReliableChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"models": {"smart": SmartFakeModel(), "backup": SmartFakeModel("backup")}}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # The model holds no credentials (the wrapped providers do) and rejects unknown
        # fields, so the suite's dummy api_key is left out.
        params = dict(super().standard_chat_model_params)
        params.pop("api_key")
        return params


class TestReliableChatModelIntegration(_ContentSuite):
    """The standard integration suite against a deterministic in-process model."""

    @property
    def chat_model_class(self) -> type[ReliableChatModel]:
        return ReliableChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "models": {"smart": SmartFakeModel(), "smart-backup": SmartFakeModel("backup")},
            "enable_caching": False,
        }

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "smart-backup"


class TestReliableChatModelJsonSchemaIntegration(TestReliableChatModelIntegration):
    """The integration suite with structured output through ``response_format`` JSON schema."""

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        return {"method": "json_schema"}


class TestReliableChatModelFallbackIntegration(_ContentSuite):
    """The integration suite while the primary model is down: every answer is a fallback's.

    Caching stays on, so repeated prompts within a test are served from the cache.
    """

    @property
    def chat_model_class(self) -> type[ReliableChatModel]:
        return ReliableChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        down = ScriptedModel(default=ServerError("service unavailable", status_code=503))
        return {
            "models": {"primary": down, "smart": SmartFakeModel()},
            "clock": FakeClock(),
            "max_retries": 1,
        }

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "smart"
