"""Deployment groups: one registered name served by several deployments of the same model.

A group spreads requests over its deployments by a strategy (the vocabulary of LiteLLM's
Router, with plain names): ``"weighted"`` random by weight (the default), ``"least_in_flight"``,
``"lowest_latency"`` (a decaying average, with exploration) and ``"lowest_usage"`` (fewest
tokens in the last minute). Each request gets an order of the group's deployments: the one the
strategy picks first, then the others in turn, so a failed deployment hands over to a sibling
(each at most once) before the route moves to the next registered name. Deployments whose
breaker is open are not picked first until their recovery time comes (then one request takes
the half-open trial); deployments known to be at a client-side limit go last.

The order is built from precomputed tables: per request, a weighted pick costs one random
number and a bisection; the tables are rebuilt only when a deployment's breaker changes state
or an open breaker's recovery time arrives.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from reliable_llm._breaker import BreakerState, ModelBreaker
from reliable_llm._bulkhead import Bulkhead, check_max_concurrent_calls
from reliable_llm._clock import Clock
from reliable_llm._errors import ConfigurationError
from reliable_llm._gate import DeploymentState, GatedProvider
from reliable_llm._groupwait import GroupQueue
from reliable_llm._provider import Provider
from reliable_llm._ratelimit import LocalRateLimiter, RateLimiter, check_limit
from reliable_llm._types import ChatRequest, ChatResponse

__all__ = ["STRATEGIES", "Deployment", "DeploymentGroup", "GroupProvider", "check_strategy"]

STRATEGIES = ("weighted", "least_in_flight", "lowest_latency", "lowest_usage")
"""Names of the ways a group picks its first deployment for a request."""

EXPLORATION = 0.1
"""Share of ``lowest_latency`` requests sent to a deployment picked at random instead, so a
deployment that was slow (or failing) and has recovered is measured again."""

_OPEN = BreakerState.OPEN
_CLOSED = BreakerState.CLOSED
_HALF_OPEN = BreakerState.HALF_OPEN


def check_strategy(strategy: object) -> str:
    """``strategy`` as one of `STRATEGIES`.

    Raises:
        ConfigurationError: Anything else, listing the choices.
    """
    if strategy not in STRATEGIES:
        raise ConfigurationError(
            f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}"
        )
    return strategy


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment of a model group, with its own weight, limits and bulkhead.

    Args:
        model: A `Provider`, a callable ``fn(prompt, **kwargs)`` or a ``"<preset>:<model>"``
            string, as `LLMManager.register_model` takes.
        name: Its label in the deployment id ``"<group>[<name>]"`` (default: its position,
            ``"<group>[0]"``). Letters, digits and ``-_.:/`` only.
        weight: Its share of requests under the ``"weighted"`` strategy (relative; > 0).
        rpm: Requests per minute it may receive from this process (None: no limit).
        tpm: Tokens per minute, input plus output (None: no limit). A request counts its
            estimate (characters / 4 plus ``max_tokens``) until the provider reports usage.
        max_concurrent_calls: Calls it may have in flight at once (None: no limit).
        metadata: Facts merged over the group's metadata for this deployment (prices, ...).

    Raises:
        ConfigurationError: A value is out of range.
    """

    model: Any
    name: str | None = None
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent_calls: int | None = None
    metadata: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        weight = self.weight
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight <= 0
        ):
            raise ConfigurationError(
                f"Deployment weight must be a finite number > 0, got {weight!r}"
            )
        check_limit("rpm", self.rpm)
        check_limit("tpm", self.tpm)
        check_max_concurrent_calls(self.max_concurrent_calls)
        name = self.name
        if name is not None and (
            not isinstance(name, str)
            or not name
            or not all(c.isalnum() or c in "-_.:/" for c in name)
        ):
            raise ConfigurationError(
                f"Deployment name must be a non-empty str of letters, digits and -_.:/ "
                f"(it becomes part of the deployment id and of metric labels), got {name!r}"
            )
        if self.metadata is not None and not isinstance(self.metadata, Mapping):
            raise ConfigurationError(
                f"Deployment metadata must be a dict, got {type(self.metadata).__name__}"
            )

    @property
    def gated(self) -> bool:
        """Whether calls pass a rate limiter or a bulkhead."""
        return self.rpm is not None or self.tpm is not None or self.max_concurrent_calls is not None


def as_deployments(group: str, models: Sequence[object]) -> tuple[Deployment, ...]:
    """The group's deployments: each item a `Deployment` or a model.

    Raises:
        ConfigurationError: No deployment, or two with the same name.
    """
    specs = tuple(m if isinstance(m, Deployment) else Deployment(m) for m in models)
    if not specs:
        raise ConfigurationError(
            f"model {group!r}: a deployment group needs at least one deployment"
        )
    labels = [spec.name if spec.name is not None else str(i) for i, spec in enumerate(specs)]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigurationError(
            f"model {group!r}: deployment names {repeated} are used more than once"
        )
    return specs


def deployment_id(group: str, spec: Deployment, index: int) -> str:
    """``"<group>[<name or index>]"``: the name a deployment has in attempts and metrics."""
    return f"{group}[{spec.name if spec.name is not None else index}]"


class _Table(NamedTuple):
    """The precomputed pick of a group: eligible deployment indexes and cumulative weights."""

    eligible: tuple[int, ...]
    cumulative: tuple[float, ...]
    total: float
    recheck_at: float  # clock seconds: rebuild then (an open breaker's trial comes due)


_STALE = _Table((), (), 0.0, -math.inf)


class DeploymentGroup:
    """The deployments of one registered name and the strategy that orders them per request.

    Args:
        name: The registered name.
        strategy: One of `STRATEGIES`.
        clock: The manager's clock.
        random: Returns floats in [0, 1) (the manager's; seed it for reproducible picks).
    """

    def __init__(self, name: str, strategy: str, clock: Clock, random: Callable[[], float]) -> None:
        self.name = name
        self.strategy = check_strategy(strategy)
        self._clock = clock
        self._random = random
        self.members: tuple[Any, ...] = ()  # the deployments' ModelEntry objects
        self.states: tuple[DeploymentState, ...] = ()
        self._orders: tuple[tuple[Any, ...], ...] = ()
        self._table = _STALE
        self._full_until = -math.inf  # some deployment refused a call; known full until then
        self._pick = getattr(self, f"_pick_{self.strategy}")
        self._weighted = self.strategy == "weighted"
        self.queue: GroupQueue | None = None  # its waiters, when it has several deployments

    def attach(self, members: Sequence[Any], states: Sequence[DeploymentState]) -> None:
        """Set the deployments (their entries, in order) once they are built."""
        self.members = tuple(members)
        self.states = tuple(states)
        n = len(self.members)
        self._orders = tuple(self.members[i:] + self.members[:i] for i in range(n))
        self._table = _STALE
        if n > 1:  # waiters wait on the group: a slot given back anywhere wakes them
            self.queue = GroupQueue(self)
            for state in self.states:
                if state.bulkhead is not None:
                    state.bulkhead.group = self.queue

    # -- keeping the tables fresh ---------------------------------------------------------------

    def on_transition(self, index: int, old: BreakerState, new: BreakerState) -> None:
        """A deployment's breaker changed: rebuild the tables on the next request."""
        if old is _HALF_OPEN and new is _CLOSED:
            self.states[index].latency = None  # recovered: measure it afresh
        self._table = _STALE

    def note_full(self, until: float) -> None:
        """A deployment refused a call and has no room until ``until`` (clock seconds)."""
        if until > self._full_until:
            self._full_until = until

    def _rebuild(self, now: float) -> _Table:
        eligible: list[int] = []
        recheck_at = math.inf
        for i, entry in enumerate(self.members):
            breaker: ModelBreaker = entry.breaker
            if breaker.state is _OPEN:
                wait = breaker.retry_in()
                if wait > 0:
                    recheck_at = min(recheck_at, now + wait)
                    continue
            eligible.append(i)
        if not eligible:  # every breaker open: pick among all (each is skipped at once)
            eligible = list(range(len(self.members)))
        cumulative: list[float] = []
        total = 0.0
        for i in eligible:
            total += self.states[i].weight
            cumulative.append(total)
        table = _Table(tuple(eligible), tuple(cumulative), total, recheck_at)
        self._table = table
        return table

    # -- room, for a request that found its deployment full ----------------------------------

    def has_room(self, index: int, now: float) -> bool:
        """Whether the deployment at ``index`` could take a call now: its breaker closed, a
        free slot in its bulkhead, and past the time its rate limit said it has room."""
        if self.members[index].breaker.state is not _CLOSED:
            return False
        state = self.states[index]
        bulkhead = state.bulkhead
        if bulkhead is not None and _full(bulkhead):
            return False
        return state.ready_at <= now

    def room_elsewhere(self, bulkhead: Bulkhead, now: float) -> bool:
        """Whether a deployment other than the one behind ``bulkhead`` has room now."""
        for i, state in enumerate(self.states):
            if state.bulkhead is not bulkhead and self.has_room(i, now):
                return True
        return False

    def next_ready(self, now: float) -> float:
        """The earliest clock time after ``now`` at which a deployment held back only by
        its rate limit has room again (inf when none is)."""
        soonest = math.inf
        for i, state in enumerate(self.states):
            if now < state.ready_at < soonest and self.members[i].breaker.state is _CLOSED:
                bulkhead = state.bulkhead
                if (
                    bulkhead is None
                    or bulkhead.limit is None
                    or bulkhead.in_flight < bulkhead.limit
                ):
                    soonest = state.ready_at
        return soonest

    def ready_time(self, index: int, now: float) -> float:
        """When the deployment at ``index`` has room: ``now`` if it has, its rate limit's
        time if only that holds it back, else inf (a full bulkhead frees at no known time)."""
        if self.has_room(index, now):
            return now
        if self.members[index].breaker.state is not _CLOSED:
            return math.inf
        state = self.states[index]
        bulkhead = state.bulkhead
        if bulkhead is not None and _full(bulkhead):
            return math.inf
        return state.ready_at

    def regroup(self, now: float) -> tuple[Any, ...]:
        """The deployments in the order a request re-runs the group's choice after waiting:
        the strategy's order, those with room now first, then by when they have room."""
        members = self.members
        order = self.order()
        return tuple(sorted(order, key=lambda e: self.ready_time(members.index(e), now)))

    # -- one request ----------------------------------------------------------------------------

    def order(self) -> tuple[Any, ...]:
        """The deployments in the order this request tries them."""
        now = self._clock.monotonic()
        table = self._table
        if now >= table.recheck_at:
            table = self._rebuild(now)
        if self._weighted:  # the default strategy, inline: one random number, one bisection
            eligible = table.eligible
            if len(eligible) == 1:
                pick = eligible[0]
            else:
                at = bisect.bisect_right(table.cumulative, self._random() * table.total)
                pick = eligible[at if at < len(eligible) else -1]
        else:
            pick = self._pick(table)
        order = self._orders[pick]
        if now < self._full_until:
            order = self._available_first(order, now)
        return order

    def _available_first(self, order: tuple[Any, ...], now: float) -> tuple[Any, ...]:
        states = self.states
        free = tuple(e for e in order if states[self.members.index(e)].full_until <= now)
        if len(free) == len(order):
            return order
        full = sorted(
            (e for e in order if e not in free),
            key=lambda e: states[self.members.index(e)].full_until,
        )
        return free + tuple(full)

    def _pick_weighted(self, table: _Table) -> int:
        eligible = table.eligible
        if len(eligible) == 1:
            return eligible[0]
        at = bisect.bisect_right(table.cumulative, self._random() * table.total)
        return eligible[at if at < len(eligible) else -1]

    def _least(self, table: _Table, score: Callable[[int], float]) -> int:
        """The eligible deployment with the lowest score; ties go to a random one of them."""
        eligible = table.eligible
        n = len(eligible)
        start = int(self._random() * n)
        best = eligible[start % n]
        best_score = score(best)
        for k in range(1, n):
            i = eligible[(start + k) % n]
            s = score(i)
            if s < best_score:
                best, best_score = i, s
        return best

    def _pick_least_in_flight(self, table: _Table) -> int:
        states = self.states
        return self._least(table, lambda i: states[i].bulkhead.in_flight)  # type: ignore[union-attr]

    def _pick_lowest_latency(self, table: _Table) -> int:
        states = self.states
        if self._random() < EXPLORATION:
            eligible = table.eligible
            return eligible[int(self._random() * len(eligible)) % len(eligible)]
        # An unmeasured deployment (new, or just recovered) scores 0: it is measured first.
        return self._least(table, lambda i: states[i].latency or 0.0)

    def _pick_lowest_usage(self, table: _Table) -> int:
        states = self.states
        return self._least(table, lambda i: states[i].limiter.usage()[1])  # type: ignore[union-attr]

    def describe(self) -> dict[str, object]:
        """The strategy and each deployment's provider description."""
        return {
            "provider": "deployment-group",
            "strategy": self.strategy,
            "deployments": {e.name: e.provider.describe() for e in self.members},
        }


def _full(bulkhead: Bulkhead) -> bool:
    limit = bulkhead.limit
    return limit is not None and bulkhead.in_flight >= limit


def deployment_state(
    spec: Deployment,
    name: str,
    index: int,
    strategy: str,
    clock: Clock,
    make_limiter: Callable[[int | None, int | None, Clock], RateLimiter] = LocalRateLimiter,
) -> DeploymentState:
    """The routing state of one deployment: the limiter and bulkhead it needs, if any.

    ``least_in_flight`` needs every deployment's calls in flight counted, ``lowest_usage``
    every deployment's tokens, so those strategies give each deployment a counting bulkhead
    or limiter even without a limit. ``make_limiter(rpm, tpm, clock)`` builds the limiter:
    the seam where a limiter shared by many processes (a `RateLimiter`) replaces the
    in-process one.
    """
    limiter = None
    if spec.rpm is not None or spec.tpm is not None or strategy == "lowest_usage":
        limiter = make_limiter(spec.rpm, spec.tpm, clock)
    bulkhead = None
    if spec.max_concurrent_calls is not None or strategy == "least_in_flight":
        bulkhead = Bulkhead(spec.max_concurrent_calls)
    return DeploymentState(name, index, float(spec.weight), limiter, bulkhead)


def gate(provider: Provider, state: DeploymentState, strategy: str, clock: Clock) -> Provider:
    """The provider a deployment is called through: gated when anything must be counted."""
    timed = strategy == "lowest_latency"
    if state.limiter is None and state.bulkhead is None and not timed:
        return provider  # a plain deployment: called directly, at no extra cost
    limiter = state.limiter
    count_tokens = limiter is not None and (limiter.tpm is not None or strategy == "lowest_usage")
    return GatedProvider(provider, state, clock, timed=timed, count_tokens=count_tokens)


class GroupProvider(Provider):
    """The provider of a group's own registry entry: it describes and closes the group.

    Requests never call it: a route holding the group is expanded into its deployments.
    """

    provider_name = "deployment-group"

    def __init__(self, group: DeploymentGroup) -> None:
        self.group = group

    def _never(self) -> ConfigurationError:
        return ConfigurationError(
            f"model {self.group.name!r} is a deployment group: call it through the manager, "
            "which routes each request to one of its deployments"
        )

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatResponse:
        raise self._never()

    async def acomplete(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatResponse:
        raise self._never()

    def describe(self) -> dict[str, object]:
        return self.group.describe()

    def close(self) -> None:
        """Close every deployment's provider (those that can be closed)."""
        for entry in self.group.members:
            close = getattr(entry.provider, "close", None)
            if callable(close):
                close()

    async def aclose(self) -> None:
        """Async twin of `close`."""
        for entry in self.group.members:
            aclose = getattr(entry.provider, "aclose", None)
            if callable(aclose):
                await aclose()
            else:
                close = getattr(entry.provider, "close", None)
                if callable(close):
                    close()
