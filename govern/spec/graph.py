"""The stage graph of an institution: every route and bound as a networkx edge.

One place turns routes into edges so that the static checks, the fingerprint,
drawing and compilation all see the same graph.

Edge semantics. A route ``stage --decision--> target`` is an edge; a route with
``max_visits`` also has an edge to its ``exhausted`` stage, and a route whose
target (or exhausted stage) has its own ``max_visits`` also has an edge to that
stage's ``exhausted``. An edge is *bounded* when it can be taken only finitely often per
item: its route has ``max_visits``, or its target stage has. A loop is bounded
when at least one of its edges is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import networkx as nx

from govern.spec.models import UNPARSABLE, Institution
from govern.spec.yaml_source import YamlPath

EdgeVia = Literal["route", "exhausted", "stage_exhausted", "oversight"]
HAPPY_DECISIONS = frozenset({"done", "approve", "amend", "pass", "held", "vacant"})


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    decision: str
    via: EdgeVia
    bounded: bool
    path: YamlPath  # where the route is written, relative to the institution

    @property
    def label(self) -> str:
        return self.decision if self.via == "route" else f"{self.decision} (exhausted)"


def stage_edges(institution: Institution) -> list[Edge]:
    """Every edge whose target stage exists; dangling targets are the checks' business."""
    stages: dict[str, Any] = {}
    for stage in institution.stages:
        stages.setdefault(stage.id, stage)  # the first of a duplicated id, as Institution.stage

    def bounded(stage_id: str) -> bool:
        return bool(getattr(stages[stage_id], "max_visits", None))

    edges: dict[Edge, None] = {}  # insertion-ordered and deduplicated in constant time

    def add(source: str, decision: str, arrivals: list, at: YamlPath) -> None:
        # Arriving at a bounded stage may be turned away to its exhausted stage
        # (which the checks keep unbounded, so a redirect is a single hop).
        for target, _, _ in list(arrivals):
            if target in stages and bounded(target):
                arrivals.append((stages[target].exhausted, "stage_exhausted", False))
        for target, via, route_bound in arrivals:
            if target is None or target not in stages:
                continue
            edges.setdefault(
                Edge(source, target, decision, via, route_bound or bounded(target), at)
            )

    for index, stage in enumerate(institution.stages):
        for decision, route in getattr(stage, "next", {}).items():
            arrivals: list[tuple[str | None, EdgeVia, bool]] = [
                (route.to, "route", route.max_visits is not None),
                (route.exhausted, "exhausted", False),
            ]
            add(stage.id, decision, arrivals, ("stages", index, "next", decision))
    # An overseer's intervention may send the item from any watched stage to its target;
    # each is bounded by the overseer's max_interventions per item.
    for index, oversight in enumerate(institution.oversight):
        for watched in institution.watched(oversight):
            for word, target in oversight.interventions.items():
                at = ("oversight", index, "interventions", word)
                add(watched, word, [(target, "oversight", True)], at)
    return list(edges)


def is_happy(institution: Institution, edge: Edge) -> bool:
    """A route taken when all goes well: a happy decision, or a review's own word that
    means approve or amend."""
    if edge.via != "route":
        return False
    meaning = getattr(institution.stage(edge.source), "meaning", None)
    return (meaning(edge.decision) if meaning else edge.decision) in HAPPY_DECISIONS


def governance_graph(institution: Institution) -> nx.MultiDiGraph:
    """Stages as nodes (with their model) and edges keyed by decision and kind of edge;
    routes of ``unparsable`` are error handling and left out, so a retry is no loop."""
    graph = nx.MultiDiGraph()
    for stage in institution.stages:
        graph.add_node(stage.id, stage=stage)
    for edge in stage_edges(institution):
        if edge.decision != UNPARSABLE:
            graph.add_edge(edge.source, edge.target, key=(edge.decision, edge.via), edge=edge)
    return graph


def unbounded_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle from every strongly connected part of the graph of unbounded edges."""
    unbounded = nx.DiGraph()
    first: dict[tuple[str, str], Edge] = {}  # the first edge between two stages stands for all
    for edge in edges:
        if not edge.bounded:
            first.setdefault((edge.source, edge.target), edge)
    unbounded.add_edges_from(first)
    cycles: list[list[Edge]] = []
    for component in nx.strongly_connected_components(unbounded):
        if len(component) == 1:
            (node,) = component
            if (node, node) in first:
                cycles.append([first[node, node]])
            continue
        found = nx.find_cycle(unbounded.subgraph(component), source=min(component))
        cycles.append([first[u, v] for u, v in found])
    return sorted(cycles, key=lambda c: c[0].path)


def terminal_ids(institution: Institution) -> list[str]:
    return [s.id for s in institution.stages if s.kind == "terminal"]
