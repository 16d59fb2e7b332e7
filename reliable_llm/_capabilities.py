"""What content a model accepts: `ModelCapabilities`.

Each provider preset declares its defaults (``Provider.capabilities``); a registration
overrides them with ``metadata={"capabilities": {...}}`` (or a `ModelCapabilities`). The route
reads them before each model's attempt to convert, strip or skip content parts
(`reliable_llm._adapt`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reliable_llm._errors import ConfigurationError

__all__ = ["ANY_CONTENT", "TEXT_ONLY", "ModelCapabilities", "capabilities_of"]

_SOURCES = frozenset(("data", "url", "file_id"))


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    """The content parts a model accepts, and in which forms.

    Attributes:
        image: How the model takes images: a subset of ``"data"`` (base64), ``"url"`` and
            ``"file_id"``; empty for a model without vision.
        image_media_types: The image media types it takes as base64 data (empty: any).
        audio: Whether it takes `AudioPart` input (base64 with a format).
        audio_formats: The audio formats it takes (empty: any), e.g. ``{"wav", "mp3"}``.
        file: How it takes documents (PDF and other `FilePart` with a payload), like
            ``image``; empty for none (a plain-text `FilePart` is then sent as text).
        file_media_types: The document media types it takes (empty: any).
        reasoning_replay: Whether reasoning parts its own provider issued are sent back to it
            (Anthropic requires signed thinking blocks back in a tool-use loop); reasoning from
            another provider is never sent.
        prompt_caching: Whether `CacheControl` markers are sent (Anthropic); otherwise they are
            stripped, as only an optimisation.
        tool_result_media: Whether a tool result may carry images and files on the wire; if
            not, they are moved into a user turn right after the tool results.
    """

    image: frozenset[str] = frozenset()
    audio: bool = False
    file: frozenset[str] = frozenset()
    image_media_types: frozenset[str] = frozenset()
    audio_formats: frozenset[str] = frozenset()
    file_media_types: frozenset[str] = frozenset()
    reasoning_replay: bool = False
    prompt_caching: bool = False
    tool_result_media: bool = False

    def __post_init__(self) -> None:
        for name in ("image", "file"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(v in _SOURCES for v in value):
                raise ConfigurationError(
                    f"ModelCapabilities.{name} must be a set of 'data', 'url' and 'file_id', "
                    f"got {value!r}"
                )
            object.__setattr__(self, name, frozenset(value))
        for name, example in (
            ("file_media_types", "{'application/pdf'}"),
            ("image_media_types", "{'image/png', 'image/jpeg'}"),
            ("audio_formats", "{'wav', 'mp3'}"),
        ):
            values = getattr(self, name)
            if isinstance(values, str) or not all(isinstance(v, str) for v in values):
                raise ConfigurationError(
                    f"ModelCapabilities.{name} must be a set of str such as {example}, got "
                    f"{values!r}"
                )
            object.__setattr__(self, name, frozenset(values))
        for name in ("audio", "reasoning_replay", "prompt_caching", "tool_result_media"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(
                    f"ModelCapabilities.{name} must be True or False, got {getattr(self, name)!r}"
                )

    @property
    def vision(self) -> bool:
        """Whether the model takes images in any form."""
        return bool(self.image)

    @property
    def documents(self) -> bool:
        """Whether the model takes documents (PDF and others) in any form."""
        return bool(self.file)

    def replace(self, **changes: Any) -> ModelCapabilities:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible view (sets as sorted lists), as `get_model_info` shows it."""
        return {
            "image": sorted(self.image),
            "audio": self.audio,
            "file": sorted(self.file),
            "file_media_types": sorted(self.file_media_types),
            "image_media_types": sorted(self.image_media_types),
            "audio_formats": sorted(self.audio_formats),
            "reasoning_replay": self.reasoning_replay,
            "prompt_caching": self.prompt_caching,
            "tool_result_media": self.tool_result_media,
        }


TEXT_ONLY = ModelCapabilities()
"""A model that takes text only: plain callables and providers that declare nothing."""

ANY_CONTENT = ModelCapabilities(
    image=frozenset(("data", "url", "file_id")),
    audio=True,
    file=frozenset(("data", "url", "file_id")),
    reasoning_replay=True,
    prompt_caching=True,
    tool_result_media=True,
)
"""A model that takes every part as given (test fakes such as `ScriptedModel`)."""

_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelCapabilities))


def capabilities_of(
    name: str, default: ModelCapabilities, metadata: Mapping[str, Any]
) -> ModelCapabilities:
    """A registered model's capabilities: the provider's ``default`` with the overrides of
    ``metadata["capabilities"]`` (a `ModelCapabilities`, or a dict of its fields).

    Raises:
        ConfigurationError: The override is neither, or names an unknown field.
    """
    override = metadata.get("capabilities")
    if override is None:
        return default
    if isinstance(override, ModelCapabilities):
        return override
    if not isinstance(override, Mapping):
        raise ConfigurationError(
            f"metadata['capabilities'] of model {name!r} must be a ModelCapabilities or a dict "
            f"of its fields, got {type(override).__name__}"
        )
    unknown = sorted(set(override) - _FIELDS)
    if unknown:
        raise ConfigurationError(
            f"metadata['capabilities'] of model {name!r} has unknown fields {unknown}; "
            f"known: {sorted(_FIELDS)}"
        )
    return default.replace(**override)
