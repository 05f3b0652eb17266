"""Compile an institution into a LangGraph ``StateGraph``.

One node per stage (three for votes and clusters: open, one worker per seat via
``Send``, and a deferred join); a conditional edge with an explicit path map
from every stage's deciding node, keyed ``decision->target`` for each edge of
the spec's stage graph, plus a stop edge for items cut off or failed. The
recursion limit follows from the policy's step bound; compiled graphs are
cached by the institution's digest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langgraph.graph import END, START, StateGraph

from govern.engine.context import RunContext
from govern.engine.routing import RETRY, STOP, edge_key
from govern.engine.stages import (
    cluster,
    draft,
    execute,
    integrate,
    propose,
    review,
    terminal,
    vote,
)
from govern.engine.stages.common import StageNodes
from govern.engine.state import ItemState
from govern.spec.digest import semantic_digest
from govern.spec.graph import stage_edges
from govern.spec.models import Institution

BUILDERS: dict[str, Callable[[Any], StageNodes]] = {
    "propose": propose.build,
    "draft": draft.build,
    "review": review.build,
    "vote": vote.build,
    "execute": execute.build,
    "cluster": cluster.build,
    "integrate": integrate.build,
    "terminal": terminal.build,
}
SUPERSTEPS_PER_STAGE = 3  # a vote or cluster: open, workers, join


@dataclass(frozen=True)
class CompiledInstitution:
    institution: Institution
    digest: str
    graph: Any  # langgraph CompiledStateGraph
    recursion_limit: int


_CACHE: dict[str, CompiledInstitution] = {}


def compile_institution(institution: Institution) -> CompiledInstitution:
    digest = semantic_digest(institution)
    if digest not in _CACHE:
        _CACHE[digest] = _compile(institution, digest)
    return _CACHE[digest]


def _compile(institution: Institution, digest: str) -> CompiledInstitution:
    graph = StateGraph(ItemState, context_schema=RunContext)
    parts = {stage.id: BUILDERS[stage.kind](stage) for stage in institution.stages}
    for part in parts.values():
        for name, action in part.nodes.items():
            graph.add_node(name, action, defer=name in part.deferred)
        if part.fan_out is not None:
            graph.add_conditional_edges(part.entry, part.fan_out, [part.worker, END])
            graph.add_edge(part.worker, part.exit)
    graph.add_edge(START, parts[institution.entry].entry)
    edges = stage_edges(institution)
    for stage in institution.stages:
        part = parts[stage.id]
        if stage.kind == "terminal":
            graph.add_edge(part.exit, END)
            continue
        path_map = {
            edge_key(e.decision, e.target): parts[e.target].entry
            for e in edges
            if e.source == stage.id
        }
        path_map[STOP] = END
        path_map[RETRY] = part.entry
        graph.add_conditional_edges(part.exit, _route, path_map)
    limit = institution.policy.max_steps * SUPERSTEPS_PER_STAGE + 2
    return CompiledInstitution(institution, digest, graph.compile(), limit)


def _route(state: ItemState) -> str:
    return state["route"]
