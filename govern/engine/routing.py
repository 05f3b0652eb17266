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
    via: str  # route | exhausted | stage_exhausted | oversight | blocked | cut_off | error
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
    target, via = _arrival(institution, target, via, visits)
    return Transition(source, decision, target, edge_key(decision, target), via, counters)


def oversight_counter(overseer: int) -> str:
    """The item's ``visits`` key counting the interventions of the ``overseer``-th oversight."""
    return f"oversight#{overseer}"


def intervention(
    institution: Institution, source: str, overseer: int, word: str, visits: dict[str, int]
) -> Transition:
    """Where an overseer's intervention sends the item from ``source``: the word's stage (or
    that stage's exhausted one, when its own bound is used up), counting the intervention."""
    counter = oversight_counter(overseer)
    target = institution.oversight[overseer].interventions[word]
    target, via = _arrival(institution, target, "oversight", visits)
    counters = {counter: visits.get(counter, 0) + 1}
    return Transition(source, word, target, edge_key(word, target), via, counters)


def _arrival(
    institution: Institution, target: str, via: str, visits: dict[str, int]
) -> tuple[str, str]:
    """A stage whose own ``max_visits`` is used up turns an arrival away to its exhausted."""
    arriving = institution.stage(target)
    limit = getattr(arriving, "max_visits", None)
    if limit is not None and visits.get(target, 0) >= limit:
        return arriving.exhausted, "stage_exhausted"
    return target, via
