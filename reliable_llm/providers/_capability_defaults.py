"""What each wire and preset accepts by default (`ModelCapabilities`), with the sources.

Defaults describe the service's current flagship chat models; a registration overrides
them for a model that differs (``metadata={"capabilities": {...}}``). Where a service's
models differ widely, or a local server takes whatever model it loaded, the default is text
only: a request with an image then skips the model with ``unsupported_input`` and a message
saying how to declare it, rather than sending it and getting a 400.
"""

from __future__ import annotations

from reliable_llm._capabilities import TEXT_ONLY, ModelCapabilities

__all__ = ["ANTHROPIC", "OPENAI", "PRESET_CAPABILITIES", "openai_capabilities"]

_BY_URL_OR_DATA = frozenset(("data", "url"))
# The image types both OpenAI and Anthropic document for base64 images.
_WEB_IMAGES = frozenset(("image/png", "image/jpeg", "image/gif", "image/webp"))

OPENAI = ModelCapabilities(
    # https://platform.openai.com/docs/guides/images-vision: image_url takes a URL or a
    # base64 data URL; https://platform.openai.com/docs/guides/pdf-files: the file part takes
    # PDFs as file_data (base64 data URL) or file_id, not by URL.
    image=_BY_URL_OR_DATA,
    image_media_types=_WEB_IMAGES,
    file=frozenset(("data", "file_id")),
    file_media_types=frozenset(("application/pdf",)),
    # input_audio's format is "wav" or "mp3" (ChatCompletionContentPartInputAudioParam).
    audio_formats=frozenset(("wav", "mp3")),
)
"""OpenAI Chat Completions (and Azure OpenAI): images, PDFs; tool results carry text only;
no reasoning replay (reasoning is not returned on this API) and no cache markers (caching is
automatic)."""

ANTHROPIC = ModelCapabilities(
    # https://docs.anthropic.com/en/docs/build-with-claude/vision (base64, url, file sources),
    # .../pdf-support (document: base64, url, file; text source for plain text),
    # .../extended-thinking (thinking blocks passed back unmodified with their signatures),
    # .../prompt-caching (cache_control on blocks, system and tool results).
    image=frozenset(("data", "url", "file_id")),
    image_media_types=_WEB_IMAGES,
    file=frozenset(("data", "url", "file_id")),
    file_media_types=frozenset(("application/pdf", "text/plain")),
    reasoning_replay=True,
    prompt_caching=True,
    tool_result_media=True,
)
"""Anthropic Messages: images and documents by data, URL or file id, signed thinking
replayed, ``cache_control`` markers, images and documents inside tool results; no audio."""


def openai_capabilities(model: str) -> ModelCapabilities:
    """OpenAI's defaults for ``model``: audio input only for its audio models
    (``gpt-4o-audio-preview``, ``gpt-audio``, ...)."""
    return OPENAI.replace(audio=True) if "audio" in model else OPENAI


_VISION = ModelCapabilities(image=_BY_URL_OR_DATA)

PRESET_CAPABILITIES: dict[str, ModelCapabilities] = {
    # https://ai.google.dev/gemini-api/docs/openai: image_url (URL or data URL), input_audio.
    "gemini": ModelCapabilities(image=_BY_URL_OR_DATA, audio=True),
    # https://openrouter.ai/docs/features/multimodal: images by URL or data URL; PDFs as the
    # file part with file_data.
    "openrouter": ModelCapabilities(
        image=_BY_URL_OR_DATA,
        file=frozenset(("data",)),
        file_media_types=frozenset(("application/pdf",)),
    ),
    # https://docs.x.ai/docs/guides/image-understanding: image_url, URL or base64.
    "xai": _VISION,
    # https://docs.mistral.ai/capabilities/vision/: image_url, URL or base64.
    "mistral": _VISION,
}
"""Defaults of the OpenAI-compatible presets that differ from text only."""

DEFAULT_COMPATIBLE = TEXT_ONLY
