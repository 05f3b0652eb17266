"""The structural fingerprint of an institution (definitions in the README).

Computed on the *governance graph*: every route of a declared decision plus its
exhausted fallbacks. Routes of the ``unparsable`` outcome are error handling and
are left out, so a retry loop does not count as a governance loop.
"""

from __future__ import annotations

import heapq
from collections import Counter

import networkx as nx
from pydantic import BaseModel, ConfigDict

from govern.spec.graph import governance_graph, is_happy
from govern.spec.models import (
    ClusterStage,
    DecomposeStage,
    Institution,
    NominateStage,
    SoloStage,
    VoteStage,
)


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
    """Model calls one run of a stage makes when all goes well; a decompose stage's depend on
    its task, so it counts the least of them: one step's k samples (and, with a planner,
    the plan and the integration)."""
    stage = institution.stage(stage_id)
    if isinstance(stage, DecomposeStage):
        return stage.voting.k + (2 if stage.planner is not None else 0)
    if isinstance(stage, VoteStage):
        return institution.body_size(stage.voters)
    if isinstance(stage, ClusterStage):
        return institution.body_size(stage.members)
    if isinstance(stage, NominateStage):
        return institution.body_size(stage.nominees)
    return 1 if isinstance(stage, SoloStage) else 0


def fingerprint(institution: Institution) -> Fingerprint:
    """Fingerprint of an institution that passed the static checks, in linear time.

    Nothing here enumerates paths or cycles, whose number can grow exponentially
    with the stages (26 stages with bounded send-backs have hundreds of thousands).
    """
    multi = governance_graph(institution)
    simple = nx.DiGraph(multi)
    terminals = {s.id for s in institution.stages if s.kind == "terminal"}
    shortest, longest = _happy_path_calls(institution, multi)
    return Fingerprint(
        roles=len(institution.roles),
        # an office's seats are held by agents of other roles: they are not agents again
        agents=sum(r.seats for r in institution.roles if r.office is None),
        stages=len(institution.stages),
        gates=sum(s.kind in ("review", "vote") for s in institution.stages),
        branches=sum(simple.out_degree(n) >= 2 for n in simple.nodes),
        loops=_cycle_rank(simple),
        depth=_depth(simple, institution.entry, terminals),
        calls_shortest_happy_path=shortest,
        calls_longest_happy_path=longest,
    )


def _cycle_rank(graph: nx.DiGraph) -> int:
    """Independent loops: over each strongly connected set of stages, edges - stages + 1.

    This is the dimension of the directed cycle space; it equals the number of
    elementary cycles whenever loops do not combine into further ones (every
    shipped institution), and unlike that number it cannot explode.
    """
    component = {}
    for number, members in enumerate(nx.strongly_connected_components(graph)):
        for node in members:
            component[node] = number
    inside = Counter(component[u] for u, v in graph.edges if component[u] == component[v])
    sizes = Counter(component.values())
    return sum(edges - sizes[c] + 1 for c, edges in inside.items())


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
    """Calls on the cheapest and dearest happy path from the entry to a completed terminal.

    Cheapest: a shortest path with each stage weighing its calls (Dijkstra; a
    cheapest path never repeats a stage). Dearest: the longest path in the
    condensation of the happy graph, each strongly connected set of stages
    weighing the calls of all its stages. When the happy decisions form no loop
    (every shipped institution) that is exactly the dearest simple path.
    """
    happy = nx.DiGraph()
    happy.add_nodes_from(multi.nodes)
    for u, v, data in multi.edges(data=True):
        edge = data["edge"]
        if is_happy(institution, edge):
            happy.add_edge(u, v)
    goals = {s.id for s in institution.stages if s.kind == "terminal" and s.outcome == "completed"}
    calls = {n: stage_calls(institution, n) for n in happy.nodes}
    entry = institution.entry
    cheapest = _cheapest(happy, entry, calls)
    costs = [cheapest[g] for g in goals if g in cheapest]
    if not costs:
        return None, None
    dag = nx.condensation(happy)
    member = dag.graph["mapping"]
    weight = {c: sum(calls[n] for n in dag.nodes[c]["members"]) for c in dag.nodes}
    dearest = {member[entry]: weight[member[entry]]}
    for c in nx.topological_sort(dag):
        if c in dearest:
            for succ in dag.successors(c):
                dearest[succ] = max(dearest.get(succ, 0), dearest[c] + weight[succ])
    longest = max(dearest[member[g]] for g in goals if member[g] in dearest)
    return min(costs), longest


def _cheapest(graph: nx.DiGraph, start: str, calls: dict[str, int]) -> dict[str, int]:
    """Least calls to reach each node from ``start``, counting the calls of every stage run."""
    best = {start: calls[start]}
    queue = [(calls[start], start)]
    while queue:
        cost, node = heapq.heappop(queue)
        if cost > best[node]:
            continue
        for nxt in graph.successors(node):
            through = cost + calls[nxt]
            if through < best.get(nxt, through + 1):
                best[nxt] = through
                heapq.heappush(queue, (through, nxt))
    return best
