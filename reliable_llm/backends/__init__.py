"""Where shared state lives beyond one process.

- `SQLiteCache`: a persistent response cache in one SQLite file, shared by the threads and
  processes of one host (standard-library `sqlite3`, JSON values, never pickle).

Loaded lazily: importing this package imports no backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reliable_llm.backends._sqlite import SQLiteCache

__all__ = ["SQLiteCache"]


def __getattr__(name: str) -> Any:
    if name == "SQLiteCache":
        from reliable_llm.backends._sqlite import SQLiteCache

        return SQLiteCache
    raise AttributeError(f"module 'reliable_llm.backends' has no attribute {name!r}")
