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


# -- the second edition: lots, chosen bodies, slates, offices, vetoes, own words, oversight --

V2_DECISIONS = {
    "draft": ["done", "unparsable"],
    "office_draft": ["done", "unparsable"],
    "review": ["approve", "reject", "unparsable"],
    "lot": ["done"],
    "nominate": ["done", "unparsable"],
    "motion": ["pass", "fail", "unparsable"],
    "election": ["pass", "fail", "unparsable"],
    "office": ["held", "vacant"],
}
V2_ROLES = [
    {"id": "r", "title": "R", "instructions": "i"},
    {"id": "p", "title": "P", "instructions": "i", "seats": 3},
    {"id": "o", "title": "O", "instructions": "i", "office": {"term": 2}},
    {"id": "c", "title": "C", "instructions": "i"},
]
ORDER = "without passing"
VACANT_OFFICE = "which may be vacant"


@st.composite
def v2_institutions(draw: st.DrawFn) -> dict[str, Any]:
    """Institutions using every construct of the second edition: mostly forward graphs (so
    many pass the graph checks), often wired wrongly in the new ways: a body chosen by a
    stage that an item may bypass, an office acting before any stage filled it."""
    count = draw(st.integers(3, 9))
    ids = [f"s{i}" for i in range(count)]
    kinds = draw(st.lists(st.sampled_from(sorted(V2_DECISIONS)), min_size=count - 1))
    kinds = [*kinds[: count - 1], "terminal"]
    for index in draw(st.sets(st.integers(1, count - 2), max_size=2)) if count > 2 else ():
        kinds[index] = "terminal"
    choosers = [i for i, k in enumerate(kinds) if k in ("lot", "nominate", "election")]
    stages: list[dict[str, Any]] = []

    def chooser_of(index: int, kinds_wanted: tuple[str, ...]) -> str | None:
        """An earlier stage that chooses (now and then any such stage, to test the order)."""
        fit = [i for i in choosers if kinds[i] in kinds_wanted and i != index]
        earlier = [i for i in fit if i < index]
        pool = fit if draw(st.integers(0, 3)) == 0 else earlier
        return f"s{draw(st.sampled_from(pool))}" if pool else None

    def body(index: int) -> Any:
        chooser = chooser_of(index, ("lot", "nominate", "election"))
        return {"chosen_by": chooser} if chooser and draw(st.booleans()) else ["p"]

    def route(index: int) -> Any:
        later = ids[index + 1 :]
        if draw(st.integers(0, 4)) == 0:  # a bounded send-back
            return {"to": draw(st.sampled_from(ids)), "max_visits": 2, "exhausted": ids[-1]}
        return draw(st.sampled_from(later))

    for index, (stage_id, kind) in enumerate(zip(ids, kinds, strict=True)):
        if kind == "terminal":
            stages.append({"id": stage_id, "kind": "terminal"})
            continue
        stage: dict[str, Any] = {"id": stage_id, "purpose": "p"}
        decisions = list(V2_DECISIONS[kind])
        slate = chooser_of(index, ("nominate",)) if kind == "election" else None
        if kind == "election" and slate is None:
            kind, decisions = "motion", list(V2_DECISIONS["motion"])
        if kind in ("draft", "office_draft"):
            stage |= {"kind": "draft", "role": "o" if kind == "office_draft" else "r"}
        elif kind == "review":
            stage |= {"kind": "review", "role": "r"}
            if draw(st.booleans()):
                stage |= {"decisions": ["approve", "reject", "annul"], "means": {"annul": "veto"}}
                decisions.insert(2, "annul")
        elif kind == "lot":
            stage |= {"kind": "lot", "pool": body(index), "draw": 1}
            if draw(st.booleans()):
                stage["fills"] = "o"
            elif isinstance(stage["pool"], list):
                stage["draw"] = draw(st.integers(1, 3))
        elif kind == "nominate":
            stage |= {"kind": "nominate", "nominees": body(index)}
        elif kind == "motion":
            stage |= {"kind": "vote", "voters": body(index)}
            if draw(st.booleans()):
                stage["veto_by"] = ["p"]
                decisions.insert(2, "vetoed")
            if draw(st.booleans()):
                stage["abstain"] = True
        elif kind == "election":
            stage |= {"kind": "vote", "voters": body(index), "rule": "plurality", "slate": slate}
            if draw(st.booleans()):
                stage["fills"] = "o"
        else:
            stage |= {"kind": "office", "office": "o"}
        # the first decision goes on to the next stage, so that most stages are reachable
        stage["next"] = {
            d: ids[index + 1] if j == 0 else route(index) for j, d in enumerate(decisions)
        }
        stages.append(stage)
    roles = [dict(role) for role in V2_ROLES]
    if not any(s.get("fills") == "o" for s in stages):  # an office nobody fills is no office
        del roles[2]["office"]
        for stage in stages:
            if stage["kind"] == "office":
                routes = stage["next"]
                stage |= {"kind": "draft", "role": "r"}
                del stage["office"]
                stage["next"] = {"done": routes["held"], "unparsable": routes["vacant"]}
    data: dict[str, Any] = {
        "id": "random",
        "name": "Random",
        "era": "now",
        "pattern": "pipeline",
        "history": "generated",
        "roles": roles,
        "stages": stages,
        "entry": "s0",
    }
    kinds_used = {s["kind"] for s in stages}
    if "vote" in kinds_used:
        data["pattern"] = "consensus"
    elif "review" in kinds_used:
        data["pattern"] = "gated_pipeline"
    asking = [s["id"] for s in stages if s["kind"] in ("draft", "review", "nominate", "vote")]
    if asking and draw(st.booleans()):
        data["oversight"] = [
            {
                "role": "c",
                "watches": draw(st.sampled_from(["all", [draw(st.sampled_from(asking))]])),
                "rate": draw(st.sampled_from([1, 0.5, "1/3"])),
                "interventions": {"annul": draw(st.sampled_from(ids))},
            }
        ]
    return data


def v2_edges(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, decision) for every way control can move, oversight included,
    read from the raw data (bounds and exhausted redirects as in brute_edges)."""
    stages = {s["id"]: s for s in data["stages"]}
    edges = []
    for stage in data["stages"]:
        for decision, route in stage.get("next", {}).items():
            route = {"to": route} if isinstance(route, str) else route
            arrivals = [route["to"], *([route["exhausted"]] if "exhausted" in route else [])]
            for target in list(arrivals):
                if "max_visits" in stages[target]:
                    arrivals.append(stages[target]["exhausted"])
            edges += [(stage["id"], t, decision) for t in arrivals]
    asks = {"draft", "review", "nominate", "vote"}
    for oversight in data.get("oversight", []):
        watched = oversight["watches"]
        if watched == "all":
            watched = [s["id"] for s in data["stages"] if s["kind"] in asks]
        for stage_id in watched:
            if stages[stage_id]["kind"] not in asks:
                continue
            for word, target in oversight["interventions"].items():
                edges.append((stage_id, target, word))
    return edges


def reach_avoiding(edges: list[tuple[str, str, str]], start: str, avoid: str) -> set[str]:
    """The stages an item can reach from ``start`` without passing ``avoid``."""
    if start == avoid:
        return set()
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for a, b, _ in edges:
            if a == node and b not in seen and b != avoid:
                seen.add(b)
                todo.append(b)
    return seen


def check_v2(data: dict[str, Any]) -> tuple[Institution | None, list]:
    """The institution and its errors, or (None, []) when the model itself refuses it."""
    from pydantic import ValidationError

    try:
        institution = Institution.model_validate(data)
    except ValidationError:
        return None, []
    loaded = LoadedInstitution(institution, YamlSource(file="random.yaml", data=data))
    return institution, check_institution(loaded)


@settings(max_examples=300, deadline=None)
@given(v2_institutions())
def test_second_edition_checks_agree_with_brute_force(data: dict[str, Any]) -> None:
    institution, errors = check_v2(data)
    if institution is None:
        return
    assert all(e.line >= 1 and e.column >= 1 for e in errors)
    messages = [e.message for e in errors]
    others = [m for m in messages if ORDER not in m and VACANT_OFFICE not in m]
    if others:  # the order checks run only on a sound graph
        assert len(others) == len(messages)
        return
    edges = v2_edges(data)
    stages = {s["id"]: s for s in data["stages"]}
    # A stage takes seats (or a slate) from a stage that may not have run: reported.
    expected_order = set()
    for stage in data["stages"]:
        needs = [
            stage[field]["chosen_by"]
            for field in ("voters", "nominees", "pool")
            if isinstance(stage.get(field), dict)
        ] + ([stage["slate"]] if "slate" in stage else [])
        for first in needs:
            if stage["id"] in reach_avoiding(edges, "s0", first):
                expected_order.add(stage["id"])
    bypassed = {re.search(r"reach '(\w+)' without", m).group(1) for m in messages if ORDER in m}
    assert bypassed == expected_order
    # An office acts where no stage filled it and no office stage found it held: reported.
    unfilled = [
        (a, b, d)
        for a, b, d in edges
        if stages[a].get("fills") != "o" and not (stages[a]["kind"] == "office" and d == "held")
    ]
    vacant = reach_avoiding(unfilled, "s0", "")
    office = any("office" in role for role in data["roles"])
    acting = {s["id"] for s in data["stages"] if s.get("role") == "o" and office}
    assert named_stages(messages, VACANT_OFFICE) == acting & vacant


@settings(max_examples=150, deadline=None)
@given(v2_institutions())
def test_a_second_edition_spec_that_passes_compiles_and_every_route_resolves(
    data: dict[str, Any],
) -> None:
    from govern.engine.compile import compile_institution

    institution, errors = check_v2(data)
    if institution is None or errors:
        return
    edges = v2_edges(data)
    terminals = {s["id"] for s in data["stages"] if s["kind"] == "terminal"}
    for stage in data["stages"]:  # every item ends: a terminal is reachable from each stage
        assert reach_avoiding(edges, stage["id"], "") & terminals
    compiled = compile_institution(institution)
    nodes = set(compiled.graph.get_graph().nodes)
    for path_map in compiled.routes.values():
        assert set(path_map.values()) <= nodes
