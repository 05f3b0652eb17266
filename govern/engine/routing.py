"""Where a decision leads, applying route and stage bounds and the item's limits.

This is the one place that resolves a transition, so that the Controller can
check and log exactly what the engine does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from govern.spec.models import Institution

STOP = "__stop__"  # the route key for an item cut off or failed before a terminal
RETRY = "__retry__"  # the route key for running a stage again after a blocked transition


@dataclass(frozen=True, slots=True)
class Transition:
    source: str
    decision: str
    target: str | None  # None when the item stops
    key: str  # the conditional edge's path-map key
    via: str  # route | exhausted | stage_exhausted | blocked | cut_off | error
    counters: dict[str, int] = field(default_factory=dict)  # edge counters to store


def edge_key(decision: str, target: str) -> str:
    return f"{decision}->{target}"


def resolve(
    institution: Institution, source: str, decision: str, visits: dict[str, int]
) -> Transition:
    route = institution.stage(source).next[decision]
    target, via = route.to, "route"
    counters: dict[str, int] = {}
    if route.max_visits is not None:
        counter = f"{source}>{decision}"
        used = visits.get(counter, 0)
        if used >= route.max_visits:
            target, via = route.exhausted, "exhausted"
        else:
            counters[counter] = used + 1
    arriving = institution.stage(target)
    limit = getattr(arriving, "max_visits", None)
    if limit is not None and visits.get(target, 0) >= limit:
        target, via = arriving.exhausted, "stage_exhausted"
    return Transition(source, decision, target, edge_key(decision, target), via, counters)
