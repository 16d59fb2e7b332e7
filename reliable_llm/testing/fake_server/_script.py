"""Per-model scripts: queued steps, per-model defaults and a global default."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from ._log import RecordedRequest
from ._steps import Fault, Reply, Step

Responder = Callable[[RecordedRequest], Step | None]
"""Computes the answer to a request from the request itself; None defers to the script."""

#: What a model with no script and no default of its own answers.
GLOBAL_DEFAULT_REPLY = Reply("ok")


def _check_step(step: object) -> Step:
    if not isinstance(step, Reply | Fault):
        raise TypeError(f"a script step must be a Reply or a Fault, got {step!r}")
    return step


class ScriptBook:
    """Thread-safe store of what each model answers next.

    A model's queued steps are consumed one per request, in order; once the queue is empty
    the model's default applies, else the global default.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Step]] = {}
        self._defaults: dict[str, Step] = {}
        self._global_default: Step = GLOBAL_DEFAULT_REPLY
        self._responder: Responder | None = None

    def script(self, model: str, steps: tuple[Step, ...]) -> None:
        """Append ``steps`` to the queue of ``model``.

        Raises:
            TypeError: If a step is neither a `Reply` nor a `Fault`.
        """
        checked = [_check_step(step) for step in steps]
        with self._lock:
            self._queues.setdefault(model, deque()).extend(checked)

    def set_default(self, model: str | None, step: Step) -> None:
        """Set what ``model`` (or, for ``None``, every model) answers once its queue is empty.

        Raises:
            TypeError: If ``step`` is neither a `Reply` nor a `Fault`.
        """
        checked = _check_step(step)
        with self._lock:
            if model is None:
                self._global_default = checked
            else:
                self._defaults[model] = checked

    def set_responder(self, responder: Responder | None) -> None:
        """Answer requests with ``responder(request)`` first; None restores plain scripts."""
        self._responder = responder

    def next_step(self, model: str, request: RecordedRequest | None = None) -> Step:
        """The step that answers the next request for ``model`` (consuming a scripted one).

        A responder, if set, decides first; when it returns None the script applies.
        """
        responder = self._responder
        if responder is not None and request is not None:
            step = responder(request)
            if step is not None:
                return _check_step(step)
        with self._lock:
            queue = self._queues.get(model)
            if queue:
                return queue.popleft()
            return self._defaults.get(model, self._global_default)

    def pending(self, model: str | None = None) -> int:
        """Return how many queued steps are left for ``model`` (all models for ``None``)."""
        with self._lock:
            if model is None:
                return sum(len(queue) for queue in self._queues.values())
            return len(self._queues.get(model, ()))

    def reset(self) -> None:
        """Forget every queue and default, restoring the global "ok" reply."""
        with self._lock:
            self._queues.clear()
            self._defaults.clear()
            self._global_default = GLOBAL_DEFAULT_REPLY
            self._responder = None
