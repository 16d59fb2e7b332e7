"""What every SDK-backed provider shares: key holding, lazy clients, timeouts, translation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import ModuleType
from typing import Any, ClassVar, Protocol

from reliable_llm._errors import ConfigurationError, MissingAPIKeyError, ProviderError
from reliable_llm._provider import Provider
from reliable_llm._types import StreamChunk
from reliable_llm.providers._sdk import load_sdk
from reliable_llm.providers._secret import SecretStr, resolve_secret
from reliable_llm.providers._translate import translate_error

__all__ = ["SDKProvider"]

_logger = logging.getLogger("reliable_llm.providers")


class StreamFolder(Protocol):
    """Folds a protocol's stream events into chunks (one per protocol's wire module)."""

    def feed(self, event: Any) -> StreamChunk | None:
        """The chunk this event adds, if any."""
        ...

    def closing_chunk(self) -> StreamChunk:
        """The last chunk; raises if the stream ended before the answer finished."""
        ...


DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0


def _check_timeout(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


class SDKProvider(Provider):
    """Base class of the providers built on an official SDK.

    Clients are created by `warm` (which `LLMManager.register_model` calls) or on first use,
    with the SDK's own retries turned off (the manager retries); a client passed in is copied
    with ``max_retries=0`` for the same reason. The API key is held in a `SecretStr` and only
    ever handed to the SDK. A missing key raises `MissingAPIKeyError` (an
    `AuthenticationError`, so the manager falls back) and is logged once as a warning.
    """

    #: The SDK module and the extra that installs it.
    sdk_module: ClassVar[str] = ""
    sdk_extra: ClassVar[str] = ""
    #: The HTTP stack of the async clients built here: ``"auto"`` uses the SDK's
    #: aiohttp-backed client when the ``aiohttp`` extra is installed (several times the
    #: throughput under concurrency; timeouts and errors map onto the SDK's as with httpx),
    #: else the SDK default; ``"httpx"`` always uses the SDK default. Set it per instance
    #: before the first async call.
    async_http: str = "auto"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | SecretStr | None,
        api_key_env: str | None,
        requires_key: bool,
        base_url: str | None,
        connect_timeout: float,
        read_timeout: float,
        default_params: Mapping[str, Any] | None,
        default_headers: Mapping[str, str] | None,
        client: Any,
        async_client: Any,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigurationError(f"model must be a non-empty str, got {model!r}")
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.requires_key = requires_key
        self.connect_timeout = _check_timeout("connect_timeout", connect_timeout)
        self.read_timeout = _check_timeout("read_timeout", read_timeout)
        self.default_params: dict[str, Any] = dict(default_params or {})
        self.default_headers: dict[str, str] = dict(default_headers or {})
        self._explicit_key = api_key
        self._secret: SecretStr | None = resolve_secret(api_key, None)
        self._lock = threading.Lock()
        self._sdk: ModuleType | None = None
        # Clients passed in are the caller's to close; the ones built here are ours.
        self._given_client: Any = _without_retries(client)
        self._given_async_client: Any = _without_retries(async_client)
        self._client: Any = None
        # An async client's connections belong to one event loop, so there is one per loop.
        self._async_clients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._loop_closers: dict[asyncio.AbstractEventLoop, Any] = {}
        # Built by warm() off any loop; the first event loop that asks adopts it.
        self._spare_async_client: Any = None
        self._warned_missing_key = False
        self._last_timeout: tuple[float | None, Any] | None = None

    # -- lazy setup ----------------------------------------------------------------------------

    def _load(self) -> ModuleType:
        sdk = self._sdk
        if sdk is None:
            sdk = self._sdk = load_sdk(self.sdk_module, self.sdk_extra)
        return sdk

    def warm(self) -> None:
        """Import the SDK and build the clients now, so no attempt pays for it.

        Builds the synchronous client and one asynchronous client that the first event loop
        to call adopts (its connections bind to that loop on first use). A missing API key or
        endpoint does not raise here: it is logged, and each call then raises it.

        Raises:
            ProviderConfigurationError: The SDK is not installed (the message names the extra).
        """
        sdk = self._load()
        self._call_timeout(None)
        try:
            _touch_resources(self.sync_client())
            if self._given_async_client is None:
                with self._lock:
                    if self._spare_async_client is None and not self._async_clients:
                        self._spare_async_client = self._make_client(sdk, asynchronous=True)
                _touch_resources(self._spare_async_client)
        except ProviderError:
            pass  # a missing key or endpoint: logged, and raised by every call until it is set

    def _api_key(self) -> str | None:
        """The key for a new client, read from the environment if not given; None if optional.

        Raises:
            MissingAPIKeyError: The key is required and neither given nor set (logged once).
        """
        secret = self._secret or resolve_secret(self._explicit_key, self.api_key_env)
        if secret is None and self.requires_key:
            raise self._missing_key()
        self._secret = secret
        return None if secret is None else secret.get_secret_value()

    def _missing_key(self) -> MissingAPIKeyError:
        where = f"set the {self.api_key_env} environment variable or " if self.api_key_env else ""
        message = (
            f"no API key for {self.provider_name} model {self.model!r}: "
            f"{where}pass api_key= to {type(self).__name__}"
        )
        if not self._warned_missing_key:
            self._warned_missing_key = True
            _logger.warning("%s; calls to this model fail until it is set", message)
        return MissingAPIKeyError(
            message, env_var=self.api_key_env, model=self.model, provider=self.provider_name
        )

    def sync_client(self) -> Any:
        """The SDK client: the one passed in, or one created on first use."""
        client = self._given_client or self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client(self._load(), asynchronous=False)
                client = self._client
        return client

    def async_client(self) -> Any:
        """The asynchronous SDK client for the running event loop.

        A client passed in is always used as is. Otherwise there is one client per event
        loop: pooled connections cannot move between loops, so a provider reused across
        ``asyncio.run`` calls (or threads with their own loops) never hits "Event loop is
        closed". Clients of loops that have closed are discarded.
        """
        if self._given_async_client is not None:
            return self._given_async_client
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            with self._lock:
                client = self._async_clients.get(loop)
                if client is None:
                    for old in [old for old in self._async_clients if old.is_closed()]:
                        _discard(self._async_clients.pop(old))
                        self._loop_closers.pop(old, None)
                    client, self._spare_async_client = self._spare_async_client, None
                    if client is None:
                        client = self._make_client(self._load(), asynchronous=True)
                    self._async_clients[loop] = client
                    self._loop_closers[loop] = _close_with_loop(self, loop, client)
        return client

    def _make_client(self, sdk: ModuleType, *, asynchronous: bool) -> Any:
        """Build the SDK client (``max_retries=0``); subclasses know the constructor."""
        raise NotImplementedError

    def _async_http_client(self, sdk: ModuleType) -> Any:
        """The HTTP client for a new async SDK client, or None for the SDK's default."""
        factory = getattr(sdk, "DefaultAioHttpClient", None)
        if self.async_http != "auto" or factory is None:
            return None
        try:
            return factory(timeout=self._client_timeout(sdk))
        except RuntimeError:  # the SDK says its aiohttp extra is not installed
            return None

    def _client_timeout(self, sdk: ModuleType) -> Any:
        return sdk.Timeout(self.read_timeout, connect=self.connect_timeout)

    def _call_timeout(self, timeout: float | None) -> Any:
        """The SDK timeout of one call: the manager's budget, connect capped by ours."""
        cached = self._last_timeout
        if cached is not None and cached[0] == timeout:
            return cached[1]
        sdk = self._load()
        if timeout is None:
            value = self._client_timeout(sdk)
        else:
            value = sdk.Timeout(timeout, connect=min(self.connect_timeout, timeout))
        # Most calls get the same per-attempt budget; reuse its (immutable) Timeout.
        self._last_timeout = (timeout, value)
        return value

    def _translate(self, exc: BaseException) -> ProviderError | None:
        """Our error for ``exc`` (raise it ``from exc``), or None for a foreign exception."""
        return translate_error(exc, self._sdk, provider=self.provider_name, secret=self._secret)

    def _pump(self, open_stream: Callable[[], Any], state: StreamFolder) -> Iterator[StreamChunk]:
        """Yield ``state``'s chunks for each event of the stream ``open_stream`` returns.

        Ends with the state's closing chunk (which raises if the stream ended unfinished);
        SDK errors are translated; the stream is closed however the consumer stops.
        """
        stream = None
        try:
            stream = open_stream()
            for event in stream:
                chunk = state.feed(event)
                if chunk is not None:
                    yield chunk
            yield state.closing_chunk()
        except Exception as exc:
            error = self._translate(exc)
            if error is None or error is exc:
                raise
            raise error from exc
        finally:
            if stream is not None:
                stream.close()

    async def _apump(
        self, open_stream: Callable[[], Awaitable[Any]], state: StreamFolder
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of `_pump`."""
        stream = None
        try:
            stream = await open_stream()
            async for event in stream:
                chunk = state.feed(event)
                if chunk is not None:
                    yield chunk
            yield state.closing_chunk()
        except Exception as exc:
            error = self._translate(exc)
            if error is None or error is exc:
                raise
            raise error from exc
        finally:
            if stream is not None:
                await stream.close()

    def close(self) -> None:
        """Close the synchronous client this provider created; a later call opens a new one."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the clients this provider created, now.

        Optional under ``asyncio.run``: a client is closed by its own loop as the loop shuts
        down. Clients passed in are left open: they belong to the caller.
        """
        with self._lock:
            client = self._async_clients.pop(asyncio.get_running_loop(), None)
            stale = [
                self._async_clients.pop(old) for old in list(self._async_clients) if old.is_closed()
            ]
            spare, self._spare_async_client = self._spare_async_client, None
        if client is not None:
            await client.close()
        if spare is not None:
            await spare.close()
        for old_client in stale:
            with contextlib.suppress(Exception):  # its loop is gone; see _discard
                await old_client.close()
        self.close()

    # -- description ---------------------------------------------------------------------------

    def describe(self) -> dict[str, object]:
        """Public facts: provider, model, endpoint, key source and timeouts; never the key."""
        return {
            "provider": self.provider_name,
            "model": self.model,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"


def _touch_resources(client: Any) -> None:
    """Load the SDK's lazily imported API resources (``client.chat.completions``,
    ``client.messages``): some SDK versions import them on first use, which costs up to a
    second inside the first attempt otherwise."""
    if client is None:
        return
    chat = getattr(client, "chat", None)
    if chat is not None:
        getattr(chat, "completions", None)
    getattr(client, "messages", None)


def _close_with_loop(
    provider: SDKProvider, loop: asyncio.AbstractEventLoop, client: Any
) -> AsyncIterator[None]:
    """An async generator, started here, whose ``finally`` closes ``client`` on ``loop``.

    ``asyncio.run`` (and ``loop.shutdown_asyncgens``) closes every async generator still
    suspended on its loop before the loop closes, so the client's connections (an aiohttp
    session, say) are closed by their own loop instead of being reported unclosed at exit.
    The provider keeps the generator alive; it must not be collected early.
    """

    async def closer() -> AsyncIterator[None]:
        try:
            yield
        finally:
            with provider._lock:
                if provider._async_clients.get(loop) is client:
                    del provider._async_clients[loop]
                provider._loop_closers.pop(loop, None)
            with contextlib.suppress(Exception):
                await client.close()

    generator = closer()
    step: Any = generator.__anext__()
    with contextlib.suppress(StopIteration):  # the first step reaches `yield` without awaiting
        step.send(None)
    return generator


_discarding: set[asyncio.Task[Any]] = set()


def _discard(client: Any) -> None:
    """Close a client whose event loop has closed, from the running loop, quietly.

    Its connections cannot be closed any more (their loop is gone), but closing marks the
    client closed, so the SDK does not schedule a failing close of its own when it is
    garbage-collected. The expected error is consumed.
    """
    task = asyncio.get_running_loop().create_task(client.close())
    _discarding.add(task)
    task.add_done_callback(_consumed)


def _consumed(task: asyncio.Task[Any]) -> None:
    _discarding.discard(task)
    if not task.cancelled():
        task.exception()


def _without_retries(client: Any) -> Any:
    if client is None:
        return None
    with_options = getattr(client, "with_options", None)
    return with_options(max_retries=0) if with_options is not None else client
