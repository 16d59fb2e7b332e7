"""LangChain integration for reliable-llm."""

from __future__ import annotations

__all__: list[str] = []
