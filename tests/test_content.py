"""Content parts: validation, the text-only API unchanged, cache keys, fitting to each model."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest

import reliable_llm._content as content_module
from reliable_llm import (
    AudioPart,
    CacheControl,
    ChatRequest,
    ConfigurationError,
    FilePart,
    ImagePart,
    LLMManager,
    Message,
    ModelCapabilities,
    ReasoningPart,
    TextPart,
    ToolCall,
    cache_key,
)
from reliable_llm._adapt import Unsupported, adapt
from reliable_llm.providers._capability_defaults import ANTHROPIC, OPENAI
from reliable_llm.testing import FakeClock, ScriptedModel

PNG_B64 = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
IMAGE = ImagePart(data=PNG_B64, media_type="image/png")


# -- the parts ------------------------------------------------------------------------------


def test_a_data_url_becomes_base64_data_and_media_type() -> None:
    """An image given as a data URL is held as its base64 data and media type."""
    part = ImagePart(url=f"data:image/png;base64,{PNG_B64}")
    assert (part.url, part.data, part.media_type) == (None, PNG_B64, "image/png")
    assert part == IMAGE


@pytest.mark.parametrize(
    ("build", "names"),
    [
        (lambda: ImagePart(url="data:image/png,iVBOR"), "malformed data URL"),
        (lambda: ImagePart(url="data:;base64,iVBOR"), "malformed data URL"),
        (lambda: ImagePart(data="not base64!", media_type="image/png"), "not valid base64"),
        (lambda: ImagePart(data=b"\x89PNG", media_type="image/png"), "from_bytes"),
        (lambda: ImagePart(data=PNG_B64, media_type="application/pdf"), "image/"),
        (lambda: ImagePart(data=PNG_B64), "media_type"),
        (lambda: ImagePart(), "exactly one of url= | data= | file_id="),
        (lambda: ImagePart(url="https://x/y.png", file_id="file-1"), "exactly one"),
        (lambda: AudioPart(PNG_B64, "aiff"), "AudioPart.format"),
        (lambda: FilePart(data=PNG_B64), "media_type"),
        (lambda: ReasoningPart(""), "ReasoningPart needs text="),
        (lambda: TextPart("a", cache_control={"type": "ephemeral"}), "CacheControl()"),  # type: ignore[arg-type]
        (lambda: CacheControl(ttl="1d"), "'5m', '1h'"),  # type: ignore[arg-type]
    ],
)
def test_malformed_parts_raise_configuration_errors_naming_the_fix(build, names) -> None:  # type: ignore[no-untyped-def]
    """A malformed part is a ConfigurationError that names the field and the fix."""
    with pytest.raises(ConfigurationError, match=names):
        build()


def test_unknown_part_types_are_rejected() -> None:
    """A dict or other object among a message's parts is rejected, not silently dropped."""
    with pytest.raises(ConfigurationError, match=r"content\[1\] is a dict, not a part"):
        Message.user([TextPart("hi"), {"type": "video", "url": "https://x"}])  # type: ignore[list-item]


def test_parts_are_checked_against_the_role() -> None:
    """Reasoning in a user turn or an image in a system prompt is refused."""
    with pytest.raises(ConfigurationError, match="a user message cannot carry a ReasoningPart"):
        Message.user([ReasoningPart("hm")])
    with pytest.raises(ConfigurationError, match="a system message cannot carry a ImagePart"):
        Message.system([IMAGE])


def test_parts_are_immutable_and_hashable() -> None:
    """Parts and messages holding them are frozen and usable as dict keys."""
    message = Message.user([TextPart("hi"), IMAGE])
    with pytest.raises(AttributeError):
        IMAGE.data = "x"  # type: ignore[misc]
    assert {message: 1}[Message.user((TextPart("hi"), IMAGE))] == 1
    assert isinstance(message.content, tuple)


def test_reprs_never_show_a_payload() -> None:
    """A part's repr gives its payload's size and hash, never the payload or a signature."""
    big = ImagePart.from_bytes(b"\0" * 300_000, "image/png")
    reasoning = ReasoningPart("hm", signature="SECRET-SIGNATURE", provider="anthropic")
    assert len(repr(big)) < 120 and "AAAA" not in repr(big)
    assert "SECRET" not in repr(reasoning) and "signature=<16 chars>" in repr(reasoning)


def test_text_only_messages_are_unchanged() -> None:
    """Message.user("...") still holds a str, and .text of parts joins their text."""
    assert Message.user("hi").content == "hi"
    assert Message.user([TextPart("a"), IMAGE, TextPart("b")]).text == "ab"
    assert Message.user("hi").parts == (TextPart("hi"),)


# -- cache keys -----------------------------------------------------------------------------


def test_a_large_image_costs_one_hash_for_its_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keying a 1 MB image hashes its bytes once (then remembers the digest), never embeds them."""
    calls: list[int] = []
    real = content_module._sha256

    def counting(data: str) -> str:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(content_module, "_sha256", counting)
    image = ImagePart.from_bytes(b"\x89PNG" + b"\1" * 1_000_000, "image/png")
    request = ChatRequest((Message.user([TextPart("what?"), image]),))

    first, second = cache_key("m", request), cache_key("m", request)

    assert first == second and calls == [len(image.data or "")]


def test_cache_keys_cover_every_part_and_are_stable_across_processes() -> None:
    """Different bytes, media type, marker or reasoning change the key; the key of the same
    request is the same in another process."""

    def key(*parts: object) -> str:
        return cache_key("m", ChatRequest((Message.user(list(parts)),)))  # type: ignore[arg-type]

    other = ImagePart.from_bytes(b"other", "image/png")
    jpeg = ImagePart(data=PNG_B64, media_type="image/jpeg")
    marked = TextPart("q", cache_control=CacheControl())
    keys = {key(TextPart("q"), IMAGE), key(TextPart("q"), other), key(TextPart("q"), jpeg)}
    keys |= {key(marked, IMAGE), key(TextPart("q"), AudioPart(PNG_B64, "wav"))}
    assert len(keys) == 5
    code = (
        "from reliable_llm import *; "
        f"print(cache_key('m', ChatRequest((Message.user([TextPart('q'), "
        f"ImagePart(data={PNG_B64!r}, media_type='image/png')]),))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == key(TextPart("q"), IMAGE)


def test_a_cached_answer_replays_its_reasoning(clock: FakeClock) -> None:
    """An answer with reasoning served from the cache carries the same reasoning."""
    reasoning = ReasoningPart("thought", signature="sig", provider="anthropic")
    from reliable_llm import ChatResponse

    model = ScriptedModel([ChatResponse("answer", reasoning=(reasoning,))])
    manager = LLMManager(clock=clock)
    manager.register_model("m", model)
    question = [Message.user([TextPart("q"), IMAGE])]

    manager.chat(question)
    again = manager.chat(question)

    assert again.cached and again.reasoning == (reasoning,) and len(model.calls) == 1


# -- fitting a request to a model -----------------------------------------------------------


def _request(*messages: Message) -> ChatRequest:
    return ChatRequest(messages)


def test_cache_markers_and_foreign_reasoning_are_stripped_for_openai() -> None:
    """For OpenAI, cache_control markers and Anthropic's signed thinking are stripped and
    counted; the text stays."""
    request = _request(
        Message.system([TextPart("sys", cache_control=CacheControl())]),
        Message.assistant([ReasoningPart("r", signature="s", provider="anthropic"), TextPart("a")]),
    )

    fitted, changes = adapt(request, "gpt", OPENAI, "openai")

    assert fitted.messages == (
        Message.system([TextPart("sys")]),
        Message.assistant([TextPart("a")]),
    )
    assert [(c.action, c.part) for c in changes] == [
        ("stripped", "cache_control"),
        ("stripped", "reasoning"),
    ]


def test_anthropic_keeps_its_own_signed_reasoning_but_not_unsigned_or_foreign() -> None:
    """Anthropic gets back thinking it signed; unsigned or another provider's is stripped."""
    own = ReasoningPart("mine", signature="s", provider="anthropic")
    unsigned = ReasoningPart("deepseek's", provider="deepseek")
    redacted = ReasoningPart(redacted_data="opaque", provider="anthropic")
    request = _request(Message.assistant([own, unsigned, redacted, TextPart("a")]))

    fitted, changes = adapt(request, "claude", ANTHROPIC, "anthropic")

    assert fitted.messages[0].content == (own, redacted, TextPart("a"))
    assert [c.detail for c in changes] == ["issued by deepseek, not anthropic"]


def test_plain_text_documents_are_sent_as_text_to_a_model_without_documents() -> None:
    """A plain-text file, given as text or as base64 text/csv data, becomes text for a model
    that takes no such document (a conversion); Anthropic takes plain text as a document."""
    csv = FilePart.from_bytes(b"a,b\n1,2\n", "text/csv")
    request = _request(Message.user([FilePart(text="notes", title="n.txt"), csv]))

    fitted, changes = adapt(request, "m", OPENAI, "openai")
    kept, _ = adapt(request, "claude", ANTHROPIC, "anthropic")

    assert fitted.messages[0].content == (TextPart("notes"), TextPart("a,b\n1,2\n"))
    assert [(c.action, c.part, c.times) for c in changes] == [("converted", "file", 2)]
    assert kept.messages[0].content[0] == FilePart(text="notes", title="n.txt")


def test_tool_result_images_move_into_a_user_turn_for_openai() -> None:
    """OpenAI's tool results carry text only: a result's image follows in a user turn, after
    all the tool results of that step."""
    call = ToolCall("c1", "chart")
    request = _request(
        Message.user("plot it"),
        Message.assistant("", [call, ToolCall("c2", "t")]),
        Message.tool([TextPart("chart:"), IMAGE], "c1"),
        Message.tool("done", "c2"),
    )

    fitted, changes = adapt(request, "gpt", OPENAI, "openai")

    assert fitted.messages[2:] == (
        Message.tool([TextPart("chart:")], "c1"),
        Message.tool("done", "c2"),
        Message.user([IMAGE]),
    )
    assert [(c.action, c.part) for c in changes] == [("converted", "tool_result")]


@pytest.mark.parametrize(
    ("part", "caps", "why"),
    [
        (IMAGE, ModelCapabilities(), "takes no images"),
        (ImagePart(url="https://x/y.png"), ModelCapabilities(image=frozenset({"data"})), "by url"),
        (AudioPart(PNG_B64, "wav"), ANTHROPIC, "takes no audio"),
        (FilePart(data=PNG_B64, media_type="application/zip"), OPENAI, "application/zip"),
        (FilePart(url="https://x/y.pdf"), OPENAI, "by url"),
        (ImagePart(data=PNG_B64, media_type="image/bmp"), ANTHROPIC, "image/bmp image"),
        (AudioPart(PNG_B64, "flac"), OPENAI.replace(audio=True), "flac audio"),
        (FilePart(file_id="file-abc", provider="openai"), ANTHROPIC, "issued by openai"),
    ],
)
def test_parts_a_model_cannot_take_in_any_form_skip_it(part, caps, why) -> None:  # type: ignore[no-untyped-def]
    """An image for a model without vision, a URL for a data-only model, audio or a document
    it cannot read, another provider's file id: the model is skipped, with the reason and the
    fix (declare the capability, or send the bytes)."""
    with pytest.raises(Unsupported, match=why) as caught:
        adapt(_request(Message.user([part])), "m", caps, "p")
    assert "metadata={'capabilities'" in str(caught.value) or "as data=" in str(caught.value)


def test_capabilities_are_declared_at_registration(clock: FakeClock) -> None:
    """metadata={'capabilities': {...}} overrides a provider's defaults; unknown fields are
    a ConfigurationError."""
    manager = LLMManager(clock=clock)
    manager.register_model(
        "vision", lambda prompt: "ok", metadata={"capabilities": {"image": {"data"}}}
    )
    assert manager.get_model_info("vision")["capabilities"]["image"] == ["data"]
    with pytest.raises(ConfigurationError, match=r"unknown fields \['vision'\]"):
        manager.register_model("x", lambda p: "", metadata={"capabilities": {"vision": True}})


def test_base64_helpers_round_trip() -> None:
    """from_bytes and .raw round-trip the payload; data_url is what an OpenAI wire sends."""
    part = ImagePart.from_bytes(b"abc", "image/gif")
    assert (
        part.raw == b"abc"
        and part.data_url == "data:image/gif;base64," + base64.b64encode(b"abc").decode()
    )


def test_presets_declare_what_their_services_take() -> None:
    """OpenAI takes images and PDFs (audio on audio models), Anthropic documents and its own
    reasoning, Gemini audio, and a service of mixed models text only until declared."""
    from reliable_llm.providers import AnthropicProvider, OpenAIProvider, preset

    gpt, audio = OpenAIProvider("gpt-4o", api_key="k"), OpenAIProvider("gpt-audio", api_key="k")
    assert gpt.capabilities.vision and not gpt.capabilities.audio and audio.capabilities.audio
    claude = AnthropicProvider("claude-sonnet-4-5", api_key="k").capabilities
    assert claude.reasoning_replay and claude.prompt_caching and not claude.audio
    assert preset("gemini", "gemini-2.5-flash", api_key="k").capabilities.audio
    groq = preset("groq", "llama-3.3-70b-versatile", api_key="k")
    assert groq.capabilities == ModelCapabilities()


def test_openai_style_message_dicts_carry_their_parts(clock: FakeClock) -> None:
    """A message dict whose content is OpenAI content parts becomes the same parts."""
    model = ScriptedModel()
    manager = LLMManager(clock=clock)
    manager.register_model("m", model)
    manager.chat(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    {"type": "input_audio", "input_audio": {"data": PNG_B64, "format": "mp3"}},
                    {"type": "file", "file": {"file_id": "file-1", "filename": "a.pdf"}},
                ],
            }
        ]
    )
    assert model.calls[0].messages[0].content == (
        TextPart("what?"),
        IMAGE,
        AudioPart(PNG_B64, "mp3"),
        FilePart(file_id="file-1", filename="a.pdf"),
    )
    with pytest.raises(ConfigurationError, match="has type 'video_url'"):
        manager.chat([{"role": "user", "content": [{"type": "video_url", "video_url": {}}]}])


def test_a_str_subclass_is_held_as_plain_text() -> None:
    """Text given as a str subclass (LangChain's text accessor) is held and keyed as text."""

    class Accessor(str):
        pass

    message = Message.user(Accessor("hi"))
    assert type(message.content) is str
    assert cache_key("m", ChatRequest((message,))) == cache_key(
        "m", ChatRequest((Message.user("hi"),))
    )


def test_reasoning_survives_the_sqlite_cache(tmp_path: object, clock: FakeClock) -> None:
    """An answer's reasoning, stored as JSON in the SQLite cache, comes back with it."""
    from pathlib import Path

    from reliable_llm import ChatResponse
    from reliable_llm.backends import SQLiteCache

    reasoning = ReasoningPart(redacted_data="opaque", provider="anthropic")
    cache = SQLiteCache(Path(str(tmp_path)) / "c.db")
    try:
        manager = LLMManager(cache_backend=cache, clock=clock)
        manager.register_model("m", ScriptedModel([ChatResponse("a", reasoning=(reasoning,))]))
        manager.chat([Message.user([TextPart("q"), IMAGE])])
        again = manager.chat([Message.user([TextPart("q"), IMAGE])])
    finally:
        cache.close()
    assert again.cached and again.reasoning == (reasoning,)


def test_a_skip_leaves_a_recovering_breaker_its_trial(clock: FakeClock) -> None:
    """A model skipped for an image while its breaker awaits a trial is not called and the
    trial stays free: the next text request to it is the trial, and closes the breaker."""
    from reliable_llm import BreakerPolicy, ServerError

    text_only = ScriptedModel([ServerError("down")], capabilities=ModelCapabilities())
    manager = LLMManager(
        max_retries=0, breaker=BreakerPolicy(failure_threshold=1, recovery_timeout=10), clock=clock
    )
    manager.register_model("text", text_only)
    manager.register_model("vision", ScriptedModel(default="seen"))
    manager.set_fallback_chain(["vision"])
    manager.chat("hello")  # the text model fails: its breaker opens
    clock.advance(11)  # a trial is due

    seen = manager.chat([Message.user([TextPart("look"), IMAGE])])
    after_skip = manager.get_model_info("text")["breaker"]
    trial = manager.chat("hello again")

    assert seen.text == "seen" and len(text_only.calls) == 2
    assert (after_skip["state"], after_skip["retry_in"]) == ("open", 0)  # no trial taken
    assert trial.model == "text" and manager.get_model_info("text")["breaker"]["state"] == "closed"
    assert manager.get_metrics()["fallbacks"]["by_reason"]["unsupported_input"] == 1


def test_threads_keying_one_new_image_agree() -> None:
    """Many threads keying the same new image part at once get the same key."""
    from concurrent.futures import ThreadPoolExecutor

    image = ImagePart.from_bytes(b"\x89PNG" + b"\2" * 200_000, "image/png")
    request = ChatRequest((Message.user([TextPart("q"), image]),))
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: cache_key("m", request), range(32)))
    assert len(keys) == 1


def test_a_file_id_goes_to_its_issuer_and_a_marker_is_dropped_without_rebuilding() -> None:
    """Anthropic takes a file id Anthropic issued; an image's cache marker is dropped for
    OpenAI without re-validating the payload, its digest kept."""
    own = FilePart(file_id="file_011", provider="anthropic")
    marked = ImagePart(data=PNG_B64, media_type="image/png", cache_control=CacheControl())
    digest = marked.digest()

    kept, _ = adapt(_request(Message.user([own])), "claude", ANTHROPIC, "anthropic")
    fitted, _ = adapt(_request(Message.user([marked])), "gpt", OPENAI, "openai")

    assert kept.messages[0].content == (own,)
    (image,) = fitted.messages[0].content
    assert image == IMAGE and image.cache_control is None and image._digest == digest
