"""The structural fingerprint of an institution (definitions in the README).

Computed on the *governance graph*: every route of a declared decision plus its
exhausted fallbacks. Routes of the ``unparsable`` outcome are error handling and
are left out, so a retry loop does not count as a governance loop.
"""

from __future__ import annotations

import networkx as nx
from pydantic import BaseModel, ConfigDict

from govern.spec.graph import HAPPY_DECISIONS, stage_graph
from govern.spec.models import ClusterStage, Institution, SoloStage, VoteStage


class Fingerprint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: int
    agents: int
    stages: int
    gates: int
    branches: int
    loops: int
    depth: int
    calls_shortest_happy_path: int | None
    calls_longest_happy_path: int | None


def stage_calls(institution: Institution, stage_id: str) -> int:
    """Model calls one run of a stage makes when all goes well."""
    stage = institution.stage(stage_id)
    seats = {r.id: r.seats for r in institution.roles}
    if isinstance(stage, VoteStage):
        return sum(seats[v] for v in stage.voters)
    if isinstance(stage, ClusterStage):
        return sum(seats[m] for m in stage.members)
    return 1 if isinstance(stage, SoloStage) else 0


def fingerprint(institution: Institution) -> Fingerprint:
    """Fingerprint of an institution that passed the static checks."""
    multi = stage_graph(institution, include_unparsable=False)
    simple = nx.DiGraph(multi)
    terminals = {s.id for s in institution.stages if s.kind == "terminal"}
    shortest, longest = _happy_path_calls(institution, multi)
    return Fingerprint(
        roles=len(institution.roles),
        agents=sum(r.seats for r in institution.roles),
        stages=len(institution.stages),
        gates=sum(s.kind in ("review", "vote") for s in institution.stages),
        branches=sum(simple.out_degree(n) >= 2 for n in simple.nodes),
        loops=sum(1 for _ in nx.simple_cycles(simple)),
        depth=_depth(simple, institution.entry, terminals),
        calls_shortest_happy_path=shortest,
        calls_longest_happy_path=longest,
    )


def _depth(graph: nx.DiGraph, entry: str, terminals: set[str]) -> int:
    """Edges on the longest path from the entry's component to a terminal's, in the condensation."""
    dag = nx.condensation(graph)
    member = dag.graph["mapping"]
    start = member[entry]
    ends = {member[t] for t in terminals}
    longest = {start: 0}
    for node in nx.topological_sort(dag):
        if node in longest:
            for succ in dag.successors(node):
                longest[succ] = max(longest.get(succ, 0), longest[node] + 1)
    reached = [longest[e] for e in ends if e in longest]
    return max(reached, default=0)


def _happy_path_calls(
    institution: Institution, multi: nx.MultiDiGraph
) -> tuple[int | None, int | None]:
    """Calls on the cheapest and dearest simple path to a completed terminal via happy decisions."""
    happy = nx.DiGraph()
    happy.add_nodes_from(multi.nodes)
    for u, v, data in multi.edges(data=True):
        edge = data["edge"]
        if edge.via == "route" and edge.decision in HAPPY_DECISIONS:
            happy.add_edge(u, v)
    goals = [s.id for s in institution.stages if s.kind == "terminal" and s.outcome == "completed"]
    costs = [
        sum(stage_calls(institution, n) for n in path)
        for goal in goals
        for path in nx.all_simple_paths(happy, institution.entry, goal)
    ]
    if institution.entry in goals:
        costs.append(0)
    return (min(costs), max(costs)) if costs else (None, None)
