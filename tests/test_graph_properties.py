"""Random governance graphs: the networkx static checks agree with brute-force search.

The brute force works from the raw YAML data with its own reading of the edge
rules (README, "Loops and bounds"), independent of govern.spec.graph.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from govern.spec.checks import check_institution
from govern.spec.loader import LoadedInstitution
from govern.spec.models import Institution
from govern.spec.yaml_source import YamlSource

DECISIONS = {"draft": ["done", "unparsable"], "review": ["approve", "reject", "unparsable"]}


@st.composite
def institutions(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(2, 7))
    ids = [f"s{i}" for i in range(count)]
    target = st.sampled_from(ids)
    stages = []
    for stage_id in ids:
        kind = draw(st.sampled_from(["draft", "review", "terminal", "draft"]))
        if kind == "terminal":
            stages.append({"id": stage_id, "kind": "terminal"})
            continue
        stage: dict[str, Any] = {"id": stage_id, "kind": kind, "role": "r", "purpose": "p"}
        routes: dict[str, Any] = {}
        for decision in DECISIONS[kind]:
            to = draw(target)
            if draw(st.integers(0, 3)) == 0:
                routes[decision] = {
                    "to": to,
                    "max_visits": draw(st.integers(1, 3)),
                    "exhausted": draw(target),
                }
            else:
                routes[decision] = to
        stage["next"] = routes
        stages.append(stage)
    # A stage's exhausted stage must itself be unbounded: bound only even-numbered
    # stages and send them to odd-numbered ones.
    for index, stage in enumerate(stages):
        if stage["kind"] != "terminal" and index % 2 == 0 and draw(st.integers(0, 3)) == 0:
            stage["max_visits"] = draw(st.integers(1, 3))
            stage["exhausted"] = draw(st.sampled_from(ids[1::2]))
    return {
        "id": "random",
        "name": "Random",
        "era": "now",
        "pattern": "gated_pipeline",
        "history": "generated",
        "roles": [{"id": "r", "title": "R", "instructions": "i"}],
        "stages": stages,
        "entry": "s0",
    }


def brute_edges(data: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, bounded) for every way control can move between two stages."""
    stages = {s["id"]: s for s in data["stages"]}

    def stage_bounded(stage_id: str) -> bool:
        return "max_visits" in stages[stage_id]

    edges = []
    for stage in data["stages"]:
        for route in stage.get("next", {}).values():
            route = {"to": route} if isinstance(route, str) else route
            arrivals = [(route["to"], "max_visits" in route)]
            if "exhausted" in route:
                arrivals.append((route["exhausted"], False))
            for target, _ in list(arrivals):
                if stage_bounded(target):
                    arrivals.append((stages[target]["exhausted"], False))
            edges += [
                (stage["id"], t, route_bound or stage_bounded(t)) for t, route_bound in arrivals
            ]
    return edges


def reach(start: str, edges: list[tuple[str, str, bool]], *, reverse: bool = False) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for a, b, _ in edges:
            src, dst = (b, a) if reverse else (a, b)
            if src == node and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


def has_unbounded_cycle(edges: list[tuple[str, str, bool]]) -> bool:
    free = [(a, b, False) for a, b, bounded in edges if not bounded]
    return any(start in {b for a, b, _ in free if a in reach(start, free)} for start, _, _ in free)


def errors_for(data: dict[str, Any]) -> list[str]:
    institution = Institution.model_validate(data)
    loaded = LoadedInstitution(institution, YamlSource(file="random.yaml", data=data))
    return [e.message for e in check_institution(loaded)]


def named_stages(messages: list[str], phrase: str) -> set[str]:
    return {re.search(r"stage '(\w+)'", m).group(1) for m in messages if phrase in m}


@settings(max_examples=400, deadline=None)
@given(institutions())
def test_static_checks_agree_with_brute_force(data: dict[str, Any]) -> None:
    messages = errors_for(data)
    edges = brute_edges(data)
    ids = [s["id"] for s in data["stages"]]
    terminals = [s["id"] for s in data["stages"] if s["kind"] == "terminal"]
    if not terminals:
        assert any("no terminal stage" in m for m in messages)
        return
    reachable = reach("s0", edges)
    assert named_stages(messages, "can never be reached") == set(ids) - reachable
    finishing = set().union(*(reach(t, edges, reverse=True) for t in terminals))
    assert named_stages(messages, "no terminal stage can be reached") == set(ids) - finishing
    loops = [m for m in messages if "has no bound" in m]
    assert bool(loops) == has_unbounded_cycle(edges)
    unbounded = {(a, b) for a, b, bounded in edges if not bounded}
    for message in loops:
        cycle = re.search(r"the loop (.+) has no bound", message).group(1).split(" -> ")
        assert cycle[0] == cycle[-1]
        assert all(pair in unbounded for pair in itertools.pairwise(cycle))
