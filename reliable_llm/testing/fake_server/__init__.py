"""A wire-compatible, fault-injecting fake LLM server for tests, notebooks and demos.

`FakeLLMServer` speaks the OpenAI chat completions, Azure OpenAI and Anthropic messages
protocols (JSON and SSE streaming) on 127.0.0.1, so the official SDKs talk to it unchanged.
Each model's answers are scripted with steps: a `Reply`, or a `Fault` such as an
`HTTPError` (see `rate_limited`, `server_error`, ...), a `Hang`, a `ResetConnection`,
`MalformedJSON`, a mid-stream `StreamErrorEvent`, a `StreamCut`, or a `SlowWire` answer
(`trickled_body`, `slow_headers`, `keep_alive_comments`, `anthropic_pings`) that only a
deadline on the whole call notices. A `Transcript` replays a recorded response byte
for byte. Every request body is recorded (`requests`), content parts included (images,
audio, documents, thinking blocks, cache markers), and a content-part shape the real API
rejects (a ``cache_control`` marker or a thinking block sent to OpenAI, an unsigned thinking
block sent to Anthropic) gets the 400 that API sends. A `Reply` may carry ``reasoning``
(Anthropic ``thinking`` with a signature; ``reasoning_content`` on the OpenAI wire) and
prompt-cache and reasoning token counts. It uses only the
standard library, serving from a background thread with its own event loop::

    import openai
    from reliable_llm.testing.fake_server import FakeLLMServer, Reply, rate_limited

    with FakeLLMServer() as server:
        server.script("gpt-4o", rate_limited(retry_after="1"), Reply("Hello!"))
        client = openai.OpenAI(
            base_url=server.openai_base_url, api_key="sk-test", max_retries=0
        )
        ...  # first call: openai.RateLimitError; second call: "Hello!"
        assert server.request_count("gpt-4o") == 2

For pytest, import the ``fake_llm_server`` fixture from
``reliable_llm.testing.fake_server.pytest_plugin`` into a ``conftest.py``. From a shell,
``python -m reliable_llm.testing.fake_server --port 8000`` serves until Ctrl-C.
"""

from __future__ import annotations

from ._cli import run_fake_server_cli
from ._log import ProtocolName, RecordedRequest
from ._script import Responder
from ._server import FakeLLMServer
from ._slow import (
    SlowWire,
    anthropic_pings,
    keep_alive_comments,
    slow_headers,
    trickled_body,
)
from ._steps import (
    Fault,
    Hang,
    HTTPError,
    MalformedJSON,
    Reply,
    ResetConnection,
    Step,
    StreamCut,
    StreamErrorEvent,
    ToolCallSpec,
    context_length_exceeded,
    not_found,
    overloaded,
    rate_limited,
    server_error,
    unauthorized,
)
from ._transcript import Transcript

__all__ = [
    "FakeLLMServer",
    "Fault",
    "HTTPError",
    "Hang",
    "MalformedJSON",
    "ProtocolName",
    "RecordedRequest",
    "Reply",
    "ResetConnection",
    "Responder",
    "SlowWire",
    "Step",
    "StreamCut",
    "StreamErrorEvent",
    "ToolCallSpec",
    "Transcript",
    "anthropic_pings",
    "context_length_exceeded",
    "keep_alive_comments",
    "not_found",
    "overloaded",
    "rate_limited",
    "run_fake_server_cli",
    "server_error",
    "slow_headers",
    "trickled_body",
    "unauthorized",
]
