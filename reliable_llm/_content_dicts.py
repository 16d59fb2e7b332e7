"""OpenAI-style content-part dicts (as in a Chat Completions request) to content parts.

`to_message` accepts OpenAI-style message dicts; when such a dict's ``content`` is a list of
parts, each is read here: ``text``, ``image_url`` (a URL or a base64 data URL, with
``detail``), ``input_audio`` (``data`` and ``format``) and ``file`` (``file_data`` as a data
URL, or ``file_id``, with ``filename``), the shapes of ``openai.types.chat``'s
``ChatCompletionContentPart*Param``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reliable_llm._content import AudioPart, FilePart, ImagePart, Part, TextPart, parse_data_url
from reliable_llm._errors import ConfigurationError

__all__ = ["parts_from_dicts"]

_KINDS = "'text', 'image_url', 'input_audio' or 'file'"


def _field(part: Mapping[str, Any], name: str, index: int) -> Mapping[str, Any]:
    value = part.get(name)
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"message content[{index}] of type {name!r} needs a {name!r} object, got {value!r}"
        )
    return value


def _part(part: object, index: int) -> Part:
    if not isinstance(part, Mapping):
        raise ConfigurationError(
            f"message content[{index}] must be a content-part dict or a part, got "
            f"{type(part).__name__}"
        )
    kind = part.get("type")
    if kind == "text":
        return TextPart(part.get("text"))  # type: ignore[arg-type]
    if kind == "image_url":
        image = _field(part, "image_url", index)
        return ImagePart(url=image.get("url"), detail=image.get("detail"))
    if kind == "input_audio":
        audio = _field(part, "input_audio", index)
        return AudioPart(audio.get("data"), audio.get("format"))  # type: ignore[arg-type]
    if kind == "file":
        file = _field(part, "file", index)
        data = file.get("file_data")
        if isinstance(data, str):
            media_type, payload = parse_data_url("FilePart", data)
            return FilePart(data=payload, media_type=media_type, filename=file.get("filename"))
        return FilePart(file_id=file.get("file_id"), filename=file.get("filename"))
    raise ConfigurationError(
        f"message content[{index}] has type {kind!r}; OpenAI-style content parts are {_KINDS} "
        "(or pass reliable_llm parts: TextPart, ImagePart, AudioPart, FilePart, ReasoningPart)"
    )


def parts_from_dicts(content: Sequence[object]) -> list[Any]:
    """Each OpenAI-style part dict of ``content`` as a part; parts pass through.

    Raises:
        ConfigurationError: An unknown part type, or a malformed part (a bad data URL, say).
    """
    return [p if not isinstance(p, Mapping) else _part(p, i) for i, p in enumerate(content)]
