"""Where shared state lives beyond one process.

- `SQLiteCache`: a persistent response cache in one SQLite file, shared by the threads and
  processes of one host (standard-library `sqlite3`, JSON values, never pickle).
- `RedisState`: breakers, Retry-After cooldowns, deployments' rate limits, the response cache
  and single flight shared by every process using one Redis (optional extra ``redis``).

Loaded lazily: importing this package imports no backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reliable_llm.backends._redis import RedisState
    from reliable_llm.backends._sqlite import SQLiteCache

__all__ = ["RedisState", "SQLiteCache"]


def __getattr__(name: str) -> Any:
    if name == "SQLiteCache":
        from reliable_llm.backends._sqlite import SQLiteCache

        return SQLiteCache
    if name == "RedisState":
        from reliable_llm.backends._redis import RedisState

        return RedisState
    raise AttributeError(f"module 'reliable_llm.backends' has no attribute {name!r}")
