"""Where shared state lives beyond one process.

- `RedisState`: breakers, Retry-After cooldowns, the response cache and single flight shared
  by every process using one Redis (optional extra ``redis``).

Loaded lazily: importing this package imports no backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reliable_llm.backends._redis import RedisState

__all__ = ["RedisState"]


def __getattr__(name: str) -> Any:
    if name == "RedisState":
        from reliable_llm.backends._redis import RedisState

        return RedisState
    raise AttributeError(f"module 'reliable_llm.backends' has no attribute {name!r}")
