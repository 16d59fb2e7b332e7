"""Fitting request fields to what an SDK method accepts, so no SDK release breaks a call.

SDKs drop typed parameters over time (newer ``anthropic`` releases no longer list
``temperature``); the API may still accept them. Fields the method does not declare are
sent as ``extra_body`` instead of failing with a ``TypeError``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["fit_to_signature"]


@functools.lru_cache(maxsize=32)
def _accepted(function: Callable[..., Any]) -> frozenset[str] | None:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters)


def fit_to_signature(method: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every keyword ``method`` does not declare moved into ``extra_body``."""
    accepted = _accepted(getattr(method, "__func__", method))
    if accepted is None:
        return params
    unknown = [name for name in params if name not in accepted]
    if unknown:
        extra = {name: params.pop(name) for name in unknown}
        params["extra_body"] = {**extra, **params.get("extra_body", {})}
    return params
