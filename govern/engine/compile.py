"""Compile an institution into a LangGraph ``StateGraph``.

One node per stage (three for votes and clusters: open, one worker per seat via
``Send``, and a deferred join). Every stage's deciding node has an explicit path
map, keyed ``decision->target`` for each edge of the spec's stage graph, plus a
stop key for items cut off or failed and a retry key; the node returns a
``Command`` that goes where its route key leads. Routing this way, rather than by
conditional edges, runs no routing function off the event loop (LangGraph runs a
synchronous one on a thread pool) and makes no copy of the state to route on. The
recursion limit follows from the policy's step bound; compiled graphs are cached
by the institution's digest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from govern.engine.context import RunContext
from govern.engine.oversight import overseen
from govern.engine.routing import RETRY, STOP, edge_key
from govern.engine.stages import (
    cluster,
    decompose,
    draft,
    execute,
    integrate,
    lot,
    nominate,
    office,
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
    "lot": lot.build,
    "nominate": nominate.build,
    "office": office.build,
    "decompose": decompose.build,
    "terminal": terminal.build,
}
SUPERSTEPS_PER_STAGE = 3  # a vote or cluster: open, workers, join


@dataclass(frozen=True)
class CompiledInstitution:
    institution: Institution
    digest: str
    graph: Any  # langgraph CompiledStateGraph
    recursion_limit: int
    routes: dict[str, dict[str, str]]  # deciding node -> {route key: the node it leads to}


_CACHE: dict[str, CompiledInstitution] = {}


def compile_institution(institution: Institution) -> CompiledInstitution:
    digest = semantic_digest(institution)
    if digest not in _CACHE:
        _CACHE[digest] = _compile(institution, digest)
    return _CACHE[digest]


def _compile(institution: Institution, digest: str) -> CompiledInstitution:
    graph = StateGraph(ItemState, context_schema=RunContext)
    parts = {stage.id: BUILDERS[stage.kind](stage) for stage in institution.stages}
    routes = _path_maps(institution, parts)
    watched = {parts[s].exit: s for o in institution.oversight for s in institution.watched(o)}
    for part in parts.values():
        for name, action in part.nodes.items():
            ends: tuple[str, ...] | None = None  # where a Command may go, for drawing
            if name in routes:
                if name in watched:  # its overseers examine the transition before it is taken
                    action = overseen(action, watched[name])
                action = _routed(action, routes[name])
                ends = tuple(dict.fromkeys(routes[name].values()))
            elif name == part.entry and part.worker is not None:
                ends = (part.worker, END)
            graph.add_node(name, action, defer=name in part.deferred, destinations=ends)
        if part.worker is not None:
            graph.add_edge(part.worker, part.exit)
    graph.add_edge(START, parts[institution.entry].entry)
    for stage in institution.stages:
        if stage.kind == "terminal":
            graph.add_edge(parts[stage.id].exit, END)
    limit = institution.policy.max_steps * SUPERSTEPS_PER_STAGE + 2
    return CompiledInstitution(institution, digest, graph.compile(), limit, routes)


def _path_maps(institution: Institution, parts: dict[str, StageNodes]) -> dict[str, dict[str, str]]:
    """Every non-terminal stage's deciding node -> {route key: the node it leads to}."""
    edges = stage_edges(institution)
    routes: dict[str, dict[str, str]] = {}
    for stage in institution.stages:
        if stage.kind == "terminal":
            continue
        part = parts[stage.id]
        path_map = {
            edge_key(e.decision, e.target): parts[e.target].entry
            for e in edges
            if e.source == stage.id
        }
        path_map[STOP] = END
        path_map[RETRY] = part.entry
        routes[part.exit] = path_map
    return routes


def _routed(action: Callable, path_map: dict[str, str]) -> Callable:
    """The deciding node, going where the route key its update carries leads."""

    async def node(state: ItemState, runtime: Runtime[RunContext]) -> Command:
        update = await action(state, runtime)
        return Command(update=update, goto=path_map[update["route"]])

    return node
