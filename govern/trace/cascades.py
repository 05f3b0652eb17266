"""Cascades: the event graph built from parent ids, and for each root claim the five measures
of "Do Agent Societies Develop Intellectual Elites?" (arXiv 2604.02674).

A root is an event that builds on nothing (a proposed claim, a plan, a seat that started
afresh). Its cascade is every event downstream of it, reached through the events that
build on it; an event downstream of two roots (a merge of both) is in both cascades. For
each root:

- **delegation**: the delegate events in its cascade (work handed to seats of a body);
- **revision**: the revision wave's length, the most revise events on one path down from
  the root;
- **contradiction**: the burst, the most distinct agents that contradicted one claim of the
  cascade (the root or any answer in it);
- **fan-in**: the most events one merge in the cascade integrated;
- **effort**: total cognitive effort, the events of the cascade (the root excluded), and
  their tokens.

Events never cross items, so cascades are built item by item: the cost is the sum over
items of roots times events, not over the whole run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the command line reads MEASURES at start-up: no pydantic model needed
    from govern.trace.events import Event

Measure = Literal["tce", "delegation", "revision", "contradiction", "fanin"]
MEASURES: tuple[Measure, ...] = ("tce", "delegation", "revision", "contradiction", "fanin")
CLAIMS = frozenset({"propose", "revise", "delegate", "merge"})  # events that make a claim


@dataclass(frozen=True, slots=True)
class Cascade:
    """One root claim's cascade and its measures."""

    root: str
    item: str
    agent: str  # who made the root claim
    delegation: int
    revision: int
    contradiction: int
    fanin: int
    effort_events: int
    effort_tokens: int

    def measure(self, name: Measure) -> int:
        """A measure by its command-line name (``tce``: total cognitive effort, in events)."""
        if name == "tce":
            return self.effort_events
        return int(getattr(self, name))


def cascades(events: Iterable[Event]) -> list[Cascade]:
    """Every root's cascade, item by item, roots in the order they were recorded."""
    by_item: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in events:
        by_item[event.run, event.item].append(event)
    found: list[Cascade] = []
    for item_events in by_item.values():
        found.extend(_item_cascades(item_events))
    return found


def _item_cascades(events: Sequence[Event]) -> list[Cascade]:
    index = {e.id: e for e in events}
    children: dict[str, list[str]] = defaultdict(list)
    for event in events:
        for parent in event.parents:
            if parent in index:
                children[parent].append(event.id)
    order = {e.id: n for n, e in enumerate(events)}
    found = []
    for root in events:
        if any(parent in index for parent in root.parents):
            continue
        downstream = _downstream(root.id, children)
        found.append(_measures(root, [index[i] for i in sorted(downstream, key=order.get)]))
    return found


def _downstream(root: str, children: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(children.get(root, ()))
    while stack:
        event = stack.pop()
        if event not in seen:
            seen.add(event)
            stack.extend(children.get(event, ()))
    return seen


def _measures(root: Event, cascade: list[Event]) -> Cascade:
    """The five measures of one cascade (its events in recorded order, parents first)."""
    inside = {root.id} | {e.id for e in cascade}
    wave = {root.id: int(root.type == "revise")}
    contradicting: dict[str, set[str]] = defaultdict(set)
    claims = {root.id} if root.type in CLAIMS else set()
    fanin = 0
    for event in cascade:
        parents = [p for p in event.parents if p in inside]
        wave[event.id] = max((wave.get(p, 0) for p in parents), default=0) + (
            event.type == "revise"
        )
        if event.type in CLAIMS:
            claims.add(event.id)
        if event.type == "contradict":
            for parent in parents:
                contradicting[parent].add(event.agent)
        if event.type == "merge":
            fanin = max(fanin, len(event.parents))
    return Cascade(
        root=root.id,
        item=root.item,
        agent=root.agent,
        delegation=sum(e.type == "delegate" for e in cascade),
        revision=max(wave.values()),
        contradiction=max((len(contradicting[c]) for c in claims), default=0),
        fanin=fanin,
        effort_events=len(cascade),
        effort_tokens=sum(e.tokens for e in cascade),
    )
