"""A persistent response cache in one SQLite file (standard-library `sqlite3`).

One table of JSON text, never pickle: write access to the file is never code execution.
Entries expire on the wall clock (`time.time`), so every process on the host agrees on when
an entry dies; the bounds (entries, bytes) are kept by evicting the least recently used.
The database runs in WAL mode, so readers never wait for the one writer, and each thread uses
its own connection, as `sqlite3` requires; writes take the database's write lock at once
(``BEGIN IMMEDIATE``) so two processes never interleave an insert and its eviction.

Hand-written over a library (``diskcache``, say) because the cache's contract is ours: JSON
values, the manager's TTL per entry, byte bounds measured as JSON text, and async twins that
keep file I/O off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from reliable_llm._errors import ConfigurationError

__all__ = ["SQLiteCache"]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    size INTEGER NOT NULL,
    expires_at REAL,
    used_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_used_at ON entries (used_at);
CREATE INDEX IF NOT EXISTS entries_expires_at ON entries (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    entries INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (0, 0, 0);

CREATE TRIGGER IF NOT EXISTS entries_added AFTER INSERT ON entries BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + new.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_removed AFTER DELETE ON entries BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - old.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_resized AFTER UPDATE OF size ON entries BEGIN
    UPDATE totals SET bytes = bytes - old.size + new.size WHERE id = 0;
END
"""
# Reading an entry refreshes its recency at most this often (seconds): most reads stay reads,
# so readers in many processes do not queue for the write lock. Hence "least recently used"
# to within this granularity.
_TOUCH_EVERY = 1.0
_OURS = frozenset(
    {"entries", "entries_used_at", "entries_expires_at", "totals"}
    | {"entries_added", "entries_removed", "entries_resized"}
)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _check_bound(name: str, value: object, *, seconds: bool = False) -> None:
    """Raise `ConfigurationError` unless ``value`` is None or a positive bound."""
    if value is None:
        return
    if seconds:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and value > 0  # type: ignore[arg-type,operator]
        kind = "None or a finite number of seconds > 0"
    else:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        kind = "an int >= 1" if name == "max_size" else "None or an int >= 1"
    if not ok:
        raise ConfigurationError(f"SQLiteCache {name} must be {kind}, got {value!r}")


def _use_wal(connection: sqlite3.Connection, patience: float = 30.0) -> None:
    """Switch the file to WAL mode unless it is in it already (the mode is the file's).

    Several processes opening a new file at once race for the switch, which takes an
    exclusive lock; SQLite answers a loser SQLITE_BUSY at once, without its busy handler, so
    the switch is tried again (every 10 ms, up to ``patience`` seconds, as busy_timeout)."""
    give_up = time.monotonic() + patience
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchall()[0][0] != "wal":
                connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) in (
                sqlite3.SQLITE_BUSY,
                sqlite3.SQLITE_LOCKED,
            )
            if not busy or time.monotonic() >= give_up:
                raise
        time.sleep(0.01)


class SQLiteCache:
    """A `reliable_llm.CacheBackend` persisted in a SQLite file, shared by threads and processes.

    Example:
        >>> from reliable_llm import LLMManager
        >>> from reliable_llm.backends import SQLiteCache
        >>> manager = LLMManager(cache_backend=SQLiteCache("llm-cache.db"))  # doctest: +SKIP

    Args:
        path: The database file; created (readable by its owner only) if missing. Every
            process that opens the same file shares its entries.
        max_size: Entries kept; the least recently used are evicted beyond it.
        ttl: The longest an entry lives, in seconds (None: as long as the manager's TTL for
            it says). The manager gives each entry its own TTL (``CachePolicy.ttl`` or the
            request's ``cache_ttl``); the shorter of the two applies.
        max_bytes: Bound on the entries' total size, in bytes of their JSON text (None: no
            bound). An entry larger than the whole bound is not stored.
        wall_clock: Seconds since the epoch (default `time.time`); tests pass their own.

    Raises:
        ConfigurationError: A bound is not a positive number, ``path`` is ``":memory:"`` (each
            connection would see its own database: use the default in-memory cache), the file
            cannot be opened or created, is not a SQLite database, or holds a cache written by
            an incompatible version.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_size: int = 100_000,
        ttl: float | None = None,
        max_bytes: int | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or str(path) in ("", ":memory:"):
            raise ConfigurationError(
                f"SQLiteCache path must be a file path, got {path!r}; for a cache that lives "
                "in one process use LLMManager's default in-memory cache"
            )
        if max_size is None:
            raise ConfigurationError("SQLiteCache max_size must be an int >= 1, got None")
        _check_bound("max_size", max_size)
        _check_bound("ttl", ttl, seconds=True)
        _check_bound("max_bytes", max_bytes)
        self.path = Path(path)
        self.max_size = max_size
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._wall_clock = wall_clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        try:  # create the file and schema now: a bad path fails here, not mid-request
            self._connect()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise ConfigurationError(
                f"SQLiteCache cannot use {str(self.path)!r} as a cache database "
                f"({type(exc).__name__}: {exc}); pass the path of a new file, in a directory "
                "that exists and is writable, or of a file an earlier SQLiteCache created"
            ) from exc

    # -- connections ----------------------------------------------------------------------------

    def _check_ours(self, connection: sqlite3.Connection) -> None:
        """Raise `ConfigurationError` when the file holds tables, indexes or triggers that are
        not a cache's: SQLiteCache never adds its tables to another application's database."""
        rows = connection.execute(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
        foreign = sorted({row[0] for row in rows} - _OURS)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise ConfigurationError(
                f"SQLiteCache path {self.path} is another database (it holds {shown}); "
                "give the cache a file of its own, e.g. 'llm-cache.db'"
            )

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        with self._lock:
            if self._closed:
                raise RuntimeError("SQLiteCache is closed")
        if not self.path.exists():
            # Created owner-only: cached answers are as private as the prompts behind them.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        # Autocommit mode: transactions are begun explicitly (BEGIN IMMEDIATE for writes).
        connection = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA busy_timeout = 30000")
            self._check_ours(connection)  # before WAL mode: another app's file stays as it was
            _use_wal(connection)
            connection.execute("PRAGMA synchronous = NORMAL")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise ConfigurationError(
                    f"{self.path} holds a cache of schema version {version}, this version of "
                    f"reliable-llm reads version {_SCHEMA_VERSION}; use another path or delete it"
                )
            if version == 0:  # a new file (or one another process is creating: idempotent)
                try:
                    connection.executescript(
                        f"BEGIN IMMEDIATE;{_SCHEMA};PRAGMA user_version = {_SCHEMA_VERSION};COMMIT;"
                    )
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
        except BaseException:
            connection.close()
            raise
        with self._lock:
            self._connections.append(connection)
        self._local.connection = connection
        return connection

    def close(self) -> None:
        """Close every connection this cache opened; later calls raise `RuntimeError`."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def __enter__(self) -> SQLiteCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the CacheBackend interface -------------------------------------------------------------

    def get(self, key: str) -> Mapping[str, Any] | None:
        """Return the live value stored under ``key``, or None.

        Raises:
            ValueError: The stored text is not a JSON object (the entry is removed).
            sqlite3.Error: The database cannot be read.
        """
        connection = self._connect()
        row = connection.execute(
            "SELECT value, expires_at, used_at FROM entries WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        text, expires_at, used_at = row
        now = self._wall_clock()
        if expires_at is not None and now >= expires_at:
            self._write(
                connection, "DELETE FROM entries WHERE key = ? AND expires_at <= ?", key, now
            )
            return None
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            self.delete(key)
            raise ValueError("unreadable entry (not a JSON object); removed")
        if now - used_at >= _TOUCH_EVERY:
            self._write(connection, "UPDATE entries SET used_at = ? WHERE key = ?", now, key)
        return value

    def set(self, key: str, value: Mapping[str, Any], ttl: float | None) -> None:
        """Store ``value`` as JSON for ``ttl`` seconds (bounded by this cache's ``ttl``).

        Raises:
            TypeError, ValueError: ``value`` is not JSON-compatible.
            sqlite3.Error: The database cannot be written.
        """
        text = _dumps(value)
        size = len(text.encode("utf-8", "surrogatepass"))
        if self.ttl is not None:
            ttl = self.ttl if ttl is None else min(ttl, self.ttl)
        connection = self._connect()
        if self.max_bytes is not None and size > self.max_bytes:
            self.delete(key)
            return
        now = self._wall_clock()
        expires_at = None if ttl is None else now + ttl
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(
                "INSERT INTO entries (key, value, size, expires_at, used_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "value = excluded.value, size = excluded.size, "
                "expires_at = excluded.expires_at, used_at = excluded.used_at",
                (key, text, size, expires_at, now),
            )
            self._evict(connection, now)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _evict(self, connection: sqlite3.Connection, now: float) -> None:
        connection.execute(
            "DELETE FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
        )
        entries, total = connection.execute(
            "SELECT entries, bytes FROM totals WHERE id = 0"
        ).fetchone()
        if entries > self.max_size:
            connection.execute(
                "DELETE FROM entries WHERE key IN "
                "(SELECT key FROM entries ORDER BY used_at, rowid LIMIT ?)",
                (entries - self.max_size,),
            )
        if self.max_bytes is not None:
            while total > self.max_bytes:
                connection.execute(
                    "DELETE FROM entries WHERE key = "
                    "(SELECT key FROM entries ORDER BY used_at, rowid LIMIT 1)"
                )
                total = connection.execute("SELECT bytes FROM totals WHERE id = 0").fetchone()[0]

    def _write(self, connection: sqlite3.Connection, sql: str, *params: object) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(sql, params)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def delete(self, key: str) -> None:
        """Remove the entry under ``key``, if any."""
        self._write(self._connect(), "DELETE FROM entries WHERE key = ?", key)

    def clear(self) -> None:
        """Remove every entry (of every process sharing the file)."""
        self._write(self._connect(), "DELETE FROM entries")

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT entries FROM totals WHERE id = 0").fetchone()[0])

    @property
    def size_bytes(self) -> int:
        """Bytes of JSON held by live and not yet purged entries."""
        return int(self._connect().execute("SELECT bytes FROM totals WHERE id = 0").fetchone()[0])

    # -- async twins: the file I/O runs in a worker thread, never on the event loop ---------------

    async def aget(self, key: str) -> Mapping[str, Any] | None:
        """Async twin of `get`."""
        return await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, value: Mapping[str, Any], ttl: float | None) -> None:
        """Async twin of `set`."""
        await asyncio.to_thread(self.set, key, value, ttl)

    async def adelete(self, key: str) -> None:
        """Async twin of `delete`."""
        await asyncio.to_thread(self.delete, key)

    def __repr__(self) -> str:
        return (
            f"SQLiteCache({str(self.path)!r}, max_size={self.max_size}, ttl={self.ttl}, "
            f"max_bytes={self.max_bytes})"
        )
