"""SQLiteCache: a persistent response cache shared by threads and processes on one host."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from drivers import ask_with

from reliable_llm import CachePolicy, ConfigurationError, LLMManager
from reliable_llm.backends import SQLiteCache
from reliable_llm.events import CacheError
from reliable_llm.testing import FakeClock, ScriptedModel


class WallClock:
    """A settable wall clock (seconds since the epoch) for expiry tests."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT key, value FROM entries ORDER BY key"))


def _consistent(path: Path) -> tuple[int, int]:
    """The stored totals, after checking they match the rows they count."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM entries").fetchone()
        totals = db.execute("SELECT entries, bytes FROM totals").fetchone()
    assert tuple(rows) == tuple(totals)
    return int(totals[0]), int(totals[1])


def test_answers_survive_a_restart(tmp_path: Path, driver: str) -> None:
    """A second manager on the same file answers from the cache without an upstream call."""
    path = tmp_path / "llm-cache.db"
    first_model = ScriptedModel(default="persisted answer")
    with SQLiteCache(path) as cache:
        first = LLMManager(cache_backend=cache, clock=FakeClock())
        first.register_model("m", first_model)
        assert ask_with(driver, first, "hi").cached is False
    second_model = ScriptedModel(default="never called")
    with SQLiteCache(path) as cache:
        second = LLMManager(cache_backend=cache, clock=FakeClock())
        second.register_model("m", second_model)
        again = ask_with(driver, second, "hi")
    assert (again.cached, again.text, again.model) == (True, "persisted answer", "m")
    assert (first_model.call_count, second_model.call_count) == (1, 0)


def test_entries_are_json_text(tmp_path: Path) -> None:
    """What the file holds is the response as JSON text, readable by any tool, never pickle."""
    path = tmp_path / "c.db"
    cache = SQLiteCache(path)
    manager = LLMManager(cache_backend=cache, clock=FakeClock())
    manager.register_model("m", ScriptedModel(default="plain text"))
    response = manager.chat("hi")
    [(_key, text)] = _rows(path)
    assert json.loads(text)["text"] == "plain text" == response.text
    assert not text.startswith("\x80")  # a pickle's protocol marker


def test_file_is_private_to_its_owner(tmp_path: Path) -> None:
    """A new cache file is readable and writable by its owner only (answers are private)."""
    path = tmp_path / "c.db"
    SQLiteCache(path).close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_entries_expire_on_the_wall_clock(tmp_path: Path) -> None:
    """An entry past its TTL (given by the manager) is a miss; before it, a hit."""
    wall = WallClock()
    cache = SQLiteCache(tmp_path / "c.db", wall_clock=wall)
    manager = LLMManager(cache_backend=cache, cache=CachePolicy(ttl=60), clock=FakeClock())
    model = ScriptedModel(default="x")
    manager.register_model("m", model)
    manager.chat("hi")
    wall.now += 59
    assert manager.chat("hi").cached is True
    wall.now += 2
    assert manager.chat("hi").cached is False
    assert model.call_count == 2


def test_cache_ttl_caps_the_managers(tmp_path: Path) -> None:
    """SQLiteCache(ttl=...) is the longest any entry lives, whatever TTL the manager gives."""
    wall = WallClock()
    cache = SQLiteCache(tmp_path / "c.db", ttl=10, wall_clock=wall)
    cache.set("k", {"a": 1}, None)
    cache.set("j", {"a": 2}, 3600)
    wall.now += 9
    assert (cache.get("k"), cache.get("j")) == ({"a": 1}, {"a": 2})
    wall.now += 1
    assert (cache.get("k"), cache.get("j")) == (None, None)


def test_least_recently_used_is_evicted_beyond_max_size(tmp_path: Path) -> None:
    """With max_size=3 the fourth entry evicts the one read least recently."""
    wall = WallClock()
    cache = SQLiteCache(tmp_path / "c.db", max_size=3, wall_clock=wall)
    for key in ("a", "b", "c"):
        cache.set(key, {"k": key}, None)
        wall.now += 2
    assert cache.get("a") == {"k": "a"}  # refreshes a
    wall.now += 2
    cache.set("d", {"k": "d"}, None)
    assert [cache.get(k) is not None for k in "abcd"] == [True, False, True, True]
    assert len(cache) == 3


def test_max_bytes_bounds_the_total_and_skips_oversized_entries(tmp_path: Path) -> None:
    """The JSON bytes held stay within max_bytes; an entry larger than the bound is not kept."""
    path = tmp_path / "c.db"
    cache = SQLiteCache(path, max_bytes=100)
    for i in range(10):
        cache.set(f"k{i}", {"t": "x" * 20}, None)  # 28 bytes of JSON each
        assert cache.size_bytes <= 100
    assert len(cache) == 3 and _consistent(path) == (3, 84)
    cache.set("k9", {"t": "y" * 200}, None)  # replaces k9 with something too big: dropped
    assert cache.get("k9") is None and len(cache) == 2


def test_unreadable_entry_is_a_reported_miss_and_is_removed(tmp_path: Path) -> None:
    """A corrupted entry is a miss reported as a CacheError; the next answer replaces it."""
    path = tmp_path / "c.db"
    cache = SQLiteCache(path)
    errors: list[CacheError] = []
    manager = LLMManager(
        cache_backend=cache,
        clock=FakeClock(),
        hooks=[lambda e: errors.append(e) if isinstance(e, CacheError) else None],
    )
    model = ScriptedModel(default="fresh")
    manager.register_model("m", model)
    manager.chat("hi")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE entries SET value = 'not json'")
    response = manager.chat("hi")
    assert (response.cached, response.text, model.call_count) == (False, "fresh", 2)
    assert [e.operation for e in errors] == ["get"]
    assert manager.chat("hi").cached is True


def test_async_requests_never_touch_the_file_on_the_event_loop(tmp_path: Path) -> None:
    """Under agenerate/astream every read and write of the file runs off the loop's thread."""
    threads: list[int] = []

    class Watched(SQLiteCache):
        def get(self, key: str):  # type: ignore[no-untyped-def]
            threads.append(threading.get_ident())
            return super().get(key)

        def set(self, key, value, ttl):  # type: ignore[no-untyped-def]
            threads.append(threading.get_ident())
            super().set(key, value, ttl)

    manager = LLMManager(cache_backend=Watched(tmp_path / "c.db"), clock=FakeClock())
    manager.register_model("m", ScriptedModel(default="x"))

    async def main() -> int:
        await manager.achat("hi")
        await manager.achat("hi")
        async for _ in manager.astream("other"):
            pass
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert len(threads) >= 5 and loop_thread not in threads


def test_many_threads_keep_the_bounds_and_the_totals(tmp_path: Path) -> None:
    """Eight threads writing and reading at once leave a bounded, consistent cache."""
    path = tmp_path / "c.db"
    cache = SQLiteCache(path, max_size=50)
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(60):
                cache.set(f"{n}-{i}", {"n": n, "i": i}, None)
                value = cache.get(f"{n}-{i % 7}")
                assert value is None or value["n"] == n
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert _consistent(path)[0] == 50 == len(cache)


def _process_worker(path: str, worker: int) -> None:
    cache = SQLiteCache(path, max_size=40, max_bytes=4000)
    for i in range(80):
        cache.set(f"shared-{i % 30}", {"worker": worker, "i": i}, None)
        cache.set(f"own-{worker}-{i}", {"worker": worker, "i": i}, 3600)
        value = cache.get(f"shared-{i % 30}")
        if value is not None and set(value) != {"worker", "i"}:
            raise AssertionError(f"torn entry {value!r}")
    cache.close()


def test_four_processes_share_one_bounded_consistent_file(tmp_path: Path) -> None:
    """Four OS processes writing one file at once: bounds hold, totals match, JSON is whole."""
    path = tmp_path / "c.db"
    SQLiteCache(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_process_worker, args=(str(path), n)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    entries, size = _consistent(path)
    assert 0 < entries <= 40 and size <= 4000
    for _key, text in _rows(path):
        assert set(json.loads(text)) == {"worker", "i"}
    # Written by the other processes, read here.
    assert len(SQLiteCache(path)) == entries


def test_a_cache_written_by_another_version_is_refused(tmp_path: Path) -> None:
    """A file whose schema version this release cannot read fails at construction, by name."""
    path = tmp_path / "c.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(ConfigurationError, match="schema version 99"):
        SQLiteCache(path)


def test_another_applications_database_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """A path to another app's SQLite database fails by name; no table is added to it and
    its journal mode is not changed."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(ConfigurationError, match=r"app\.db is another database .*users"):
        SQLiteCache(path)
    with sqlite3.connect(path) as db:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert (names, mode) == (["users"], "delete")


def test_closed_cache_refuses_further_use(tmp_path: Path) -> None:
    """After close(), a call from a new thread raises instead of reopening the file."""
    cache = SQLiteCache(tmp_path / "c.db")
    cache.close()
    result: list[BaseException] = []

    def use() -> None:
        try:
            cache.get("k")
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert [type(e) for e in result] == [RuntimeError]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": 0}, "max_size must be an int >= 1"),
        ({"max_size": None}, "max_size must be an int >= 1"),
        ({"max_size": 1.5}, "max_size must be an int >= 1"),
        ({"ttl": 0}, "ttl must be None or a finite number of seconds > 0"),
        ({"ttl": float("nan")}, "ttl must be None or a finite number of seconds > 0"),
        ({"max_bytes": True}, "max_bytes must be None or an int >= 1"),
    ],
)
def test_bad_bounds_are_refused_by_name(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    """Each bound is checked at construction, the error naming the parameter."""
    with pytest.raises(ConfigurationError, match=message):
        SQLiteCache(tmp_path / "c.db", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [":memory:", ""])
def test_memory_path_is_refused(path: str) -> None:
    """':memory:' would give each thread its own empty cache: the error says what to use."""
    with pytest.raises(ConfigurationError, match="in-memory cache"):
        SQLiteCache(path)


def test_repr_names_the_file_and_bounds(tmp_path: Path) -> None:
    """The repr shows where the cache lives and its bounds."""
    cache = SQLiteCache(tmp_path / "c.db", max_size=7)
    assert (
        repr(cache)
        == f"SQLiteCache({str(tmp_path / 'c.db')!r}, max_size=7, ttl=None, max_bytes=None)"
    )
    assert os.path.basename(str(cache.path)) == "c.db"


def test_readme_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's SQLiteCache example runs as written and prints what it says."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Persistent and shared state", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.split() == ["1", "1"]
    assert (tmp_path / "llm-cache.db").exists()


@pytest.mark.parametrize("kind", ["junk file", "directory", "missing directory"])
def test_unusable_path_is_a_configuration_error(tmp_path: Path, kind: str) -> None:
    """A path that is not a database, is a directory or cannot be created fails by name."""
    path = tmp_path / "c.db"
    if kind == "junk file":
        path.write_bytes(b"this is not a sqlite database, just some bytes" * 40)
    elif kind == "directory":
        path.mkdir()
    else:
        path = tmp_path / "missing" / "c.db"
    with pytest.raises(ConfigurationError, match=r"cannot use .*c\.db"):
        SQLiteCache(path)


def _open_at(path: str, when: float, results: Any) -> None:
    """A worker process: open the cache at ``when`` (with the others) and write to it."""
    while time.time() < when:
        pass
    try:
        SQLiteCache(path).set("k", {"pid": os.getpid()}, None)
        results.put("ok")
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Six processes open one new cache file at the same instant, eight times over: every one
    opens it (the race to switch it to WAL mode once ended in 'database is locked')."""
    context = multiprocessing.get_context("fork")
    outcomes: list[str] = []
    for round_ in range(8):
        path = str(tmp_path / f"c{round_}.db")
        results = context.Queue()
        when = time.time() + 0.2
        workers = [context.Process(target=_open_at, args=(path, when, results)) for _ in range(6)]
        for worker in workers:
            worker.start()
        outcomes += [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(60)
    assert outcomes == ["ok"] * 48
