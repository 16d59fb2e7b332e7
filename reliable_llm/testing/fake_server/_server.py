"""`FakeLLMServer`: the scripted fake, served from a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

from ._handler import Handler
from ._log import RecordedRequest, RequestLog
from ._script import Responder, ScriptBook
from ._steps import Step

#: Pending connections the listening socket queues (the kernel may cap it lower).
_BACKLOG = 4096


class FakeLLMServer:
    """A local, wire-compatible fake of the OpenAI, Azure OpenAI and Anthropic APIs.

    It speaks HTTP/1.1 on ``host`` (an ephemeral port by default) from a background thread
    with its own event loop, so synchronous and asynchronous clients alike can use it. What
    each model answers is scripted with `script` and `set_default`; every request is
    recorded in `requests`.

    Example::

        with FakeLLMServer() as server:
            server.script("gpt-4o", rate_limited(retry_after="2"), Reply("hi"))
            client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test")
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server; nothing listens until `start`.

        Args:
            host: Interface to bind. Keep the default unless you mean to expose it.
            port: Port to bind; 0 picks a free ephemeral port.
        """
        self._host = host
        self._requested_port = port
        self._book = ScriptBook()
        self._log = RequestLog()
        self._handler = Handler(self._book, self._log)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not running"
        return f"<FakeLLMServer {where}>"

    # lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Bind and start serving in a background thread; return ``self``.

        Raises:
            RuntimeError: If the server is already running.
            OSError: If the address cannot be bound.
        """
        if self._thread is not None:
            raise RuntimeError("FakeLLMServer is already running")
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run, name="fake-llm-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving: drop open connections (hanging ones too) and join the thread.

        Calling it on a stopped server does nothing.
        """
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already finished
                loop.call_soon_threadsafe(stop_event.set)
        thread.join()
        self._thread = None
        self._port = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start() instead of dying in the thread
            if not self._ready.is_set():
                self._startup_error = exc
                self._ready.set()
            else:
                raise

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        connections: set[asyncio.Task[None]] = set()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await self._handler.serve(reader, writer)
            except asyncio.CancelledError:
                # Cancelled by stop(). Ending normally matters: on Python 3.11 asyncio's
                # done-callback for this task calls task.exception(), which would raise.
                pass
            finally:
                connections.discard(task)

        server = await asyncio.start_server(
            on_connect, self._host, self._requested_port, backlog=_BACKLOG
        )
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            await server.wait_closed()
            await asyncio.sleep(0)  # let transports finish closing their sockets

    # addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: If the server is not running.
        """
        if self._port is None:
            raise RuntimeError("FakeLLMServer is not running; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:54321``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI`` (the root plus ``/v1``)."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for ``anthropic.Anthropic`` (the root; the SDK adds ``/v1``)."""
        return self.base_url

    @property
    def azure_endpoint(self) -> str:
        """The ``azure_endpoint`` for ``openai.AzureOpenAI`` (the root)."""
        return self.base_url

    # scripting ----------------------------------------------------------------------------

    def script(self, model: str, *steps: Step) -> None:
        """Queue ``steps`` for ``model``; each request for it consumes the next one.

        ``model`` is the request's ``model`` field, or the deployment name for Azure.

        Raises:
            TypeError: If a step is neither a `Reply` nor a `Fault`.
        """
        self._book.script(model, steps)

    def set_default(self, model: str | None, step: Step) -> None:
        """Set what ``model`` answers once its queue is empty (``None``: every model).

        Without any default a model answers ``Reply("ok")``.

        Raises:
            TypeError: If ``step`` is neither a `Reply` nor a `Fault`.
        """
        self._book.set_default(model, step)

    def set_responder(self, responder: Responder | None) -> None:
        """Answer each request with ``responder(request)``, computed from the request itself.

        ``request`` is the `RecordedRequest` (its parsed JSON ``body``, ``model``,
        ``protocol``, headers); returning None lets the model's script or default answer.
        Pass None to remove the responder; `reset` removes it too.

        Raises:
            TypeError: If the responder returns something that is not a `Reply` or `Fault`.
        """
        self._book.set_responder(responder)

    def pending(self, model: str | None = None) -> int:
        """Return how many queued steps are still unconsumed (for ``model``, if given)."""
        return self._book.pending(model)

    # observing ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        return self._log.snapshot()

    def request_count(self, model: str | None = None) -> int:
        """Return how many requests were received (for ``model`` only, if given)."""
        return self._log.count(model)

    @property
    def active_connections(self) -> int:
        """How many client connections are open right now."""
        return self._handler.active_connections

    @property
    def peak_connections(self) -> int:
        """The most client connections open at once since start or the last `reset`."""
        return self._handler.peak_connections

    def reset(self) -> None:
        """Forget every script, default and recorded request; restart the peak count."""
        self._book.reset()
        self._log.clear()
        self._handler.peak_connections = self._handler.active_connections
