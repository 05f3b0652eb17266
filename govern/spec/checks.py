"""Static checks of an institution: references, routing, reachability, bounds, patterns.

Every problem is reported with the line of the YAML that causes it. Graph checks
run only once the references are sound, so one misspelt stage id gives one
error, not a cascade.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from govern.spec.errors import SpecError, SpecInvalid, quoted
from govern.spec.graph import stage_edges, terminal_ids, unbounded_cycles
from govern.spec.loader import LoadedInstitution, LoadedManifest, load_spec

if TYPE_CHECKING:
    from govern.experiments.spec import LoadedExperiment
from govern.spec.models import (
    GATE_KINDS,
    UNPARSABLE,
    ClusterStage,
    Institution,
    IntegrateStage,
    SoloStage,
    VoteStage,
)
from govern.spec.validation import Hints, listing


def check_institution(loaded: LoadedInstitution) -> list[SpecError]:
    errors = _check_references(loaded)
    if not errors:
        errors = _check_graph(loaded) + _check_pattern(loaded)
    return errors


def check_manifest(loaded: LoadedManifest) -> list[SpecError]:
    errors = check_institution(loaded.institution) + _check_governance(loaded)
    role_ids = [r.id for r in loaded.institution.institution.roles]
    suggest = Hints()
    stage_ids = [s.id for s in loaded.institution.institution.stages]
    named = (
        (("models", "roles"), loaded.manifest.models.roles, role_ids, "role"),
        (("sampling", "roles"), loaded.manifest.sampling.roles, role_ids, "role"),
        (("sampling", "stages"), loaded.manifest.sampling.stages, stage_ids, "stage"),
    )
    for at, given, ids, what in named:
        known = set(ids)
        for name in given:
            if name not in known:
                errors.append(
                    loaded.source.error(
                        (*at, name),
                        f"no {what} '{name}' in the institution{suggest(name, ids)}; "
                        f"{what}s: {listing(ids)}",
                    )
                )
    stages = {s.id: s for s in loaded.institution.institution.stages}
    for stage_id, settings in loaded.manifest.sampling.stages.items():
        kind = stages[stage_id].kind if stage_id in stages else None
        if settings.samples and kind not in (None, "vote", "cluster"):
            errors.append(
                loaded.source.error(
                    ("sampling", "stages", stage_id, "samples"),
                    f"stage '{stage_id}' is a {kind} stage, asked once: samples are for "
                    "stages that ask several seats (vote, cluster); set its sampling directly",
                )
            )
    return errors


def _check_governance(loaded: LoadedManifest) -> list[SpecError]:
    """The overlay names real states, roles and Oracle predicates."""
    from govern.governance.oracle import AGENT_PREDICATES

    overlay = loaded.manifest.governance
    if overlay is None:
        return []
    errors: list[SpecError] = []
    suggest = Hints()

    def err(path: tuple, message: str) -> None:
        errors.append(loaded.source.error(("governance", *path), message))

    states = overlay.states
    known_states = set(states)
    if len(known_states) != len(states):
        err(("states",), "a state is listed twice")
    for path, state in [
        (("initial",), overlay.initial),
        *((("acting", i), s) for i, s in enumerate(overlay.acting)),
    ]:
        if state not in known_states:
            err(path, f"no state '{state}'{suggest(state, states)}; states: {listing(states)}")
    if overlay.initial not in set(overlay.acting):
        err(("initial",), f"agents start {overlay.initial}, which may not act: list it in acting")
    for group in ("rules", "restorations"):
        for i, rule in enumerate(getattr(overlay, group)):
            for key, state in (("from", rule.from_state), ("to", rule.to)):
                if state not in known_states:
                    err(
                        (group, i, key),
                        f"no state '{state}'{suggest(state, states)}; states: {listing(states)}",
                    )
    acting = set(overlay.acting)
    for i, rule in enumerate(overlay.rules):
        predicate = rule.evidence.predicate
        if predicate not in AGENT_PREDICATES:
            err(
                ("rules", i, "evidence", "predicate"),
                f"no agent predicate '{predicate}'{suggest(predicate, sorted(AGENT_PREDICATES))}"
                f"; predicates: {', '.join(sorted(AGENT_PREDICATES))}",
            )
        suspended = rule.sanction is not None and rule.sanction.kind == "suspension"
        if suspended and rule.to in acting:
            err(
                ("rules", i, "to"),
                f"a suspension moves the agent to '{rule.to}', a state that "
                "may act: suspend into a state not listed in acting",
            )
    roles = [r.id for r in loaded.institution.institution.roles]
    stand_in = overlay.stand_in.role
    if stand_in is not None and stand_in not in set(roles):
        err(
            ("stand_in", "role"),
            f"no role '{stand_in}'{suggest(stand_in, roles)}; roles: {listing(roles)}",
        )
    return errors


def _check_references(loaded: LoadedInstitution) -> list[SpecError]:
    inst = loaded.institution
    errors: list[SpecError] = []
    err = loaded.error
    suggest = Hints()
    role_ids = [r.id for r in inst.roles]
    stage_ids = [s.id for s in inst.stages]
    known_ids = {"role": set(role_ids), "stage": set(stage_ids)}

    for kind, ids, items in (("role", role_ids, "roles"), ("stage", stage_ids, "stages")):
        first: dict[str, int] = {}
        for index, item_id in enumerate(ids):
            if first.setdefault(item_id, index) != index:
                errors.append(err((items, index, "id"), f"duplicate {kind} id '{item_id}'"))

    def known(value: str, choices: list[str], what: str, path: tuple) -> None:
        if value not in known_ids[what]:
            errors.append(
                err(
                    path,
                    f"no {what} '{value}'{suggest(value, choices)}; {what}s: {listing(choices)}",
                )
            )

    known(inst.entry, stage_ids, "stage", ("entry",))
    bounded_stages = {s.id for s in inst.stages if getattr(s, "max_visits", None)}
    for i, stage in enumerate(inst.stages):
        at = ("stages", i)
        if isinstance(stage, SoloStage):
            known(stage.role, role_ids, "role", (*at, "role"))
        if isinstance(stage, VoteStage):
            for j, voter in enumerate(stage.voters):
                known(voter, role_ids, "role", (*at, "voters", j))
            if stage.chair:
                known(stage.chair, role_ids, "role", (*at, "chair"))
            voters = set(stage.voters)
            for role_id in stage.weights or {}:
                if role_id not in voters:
                    errors.append(
                        err(
                            (*at, "weights", role_id),
                            f"'{role_id}' has a weight but is not a voter of this stage",
                        )
                    )
        if isinstance(stage, ClusterStage):
            for j, member in enumerate(stage.members):
                known(member, role_ids, "role", (*at, "members", j))
        if isinstance(stage, IntegrateStage):
            for j, source in enumerate(stage.inputs or []):
                known(source, stage_ids, "stage", (*at, "inputs", j))
        if stage.kind == "terminal":
            continue
        errors += _check_decisions(loaded, i, suggest)
        if stage.exhausted is not None:
            known(stage.exhausted, stage_ids, "stage", (*at, "exhausted"))
            if stage.exhausted == stage.id:
                errors.append(err((*at, "exhausted"), "a stage cannot be its own exhausted route"))
            elif stage.exhausted in bounded_stages:
                errors.append(
                    err(
                        (*at, "exhausted"),
                        f"'{stage.exhausted}' has its own max_visits; "
                        "a stage's exhausted route must lead to a stage without one",
                    )
                )
        for decision, route in stage.next.items():
            known(route.to, stage_ids, "stage", (*at, "next", decision))
            if route.exhausted is not None:
                known(route.exhausted, stage_ids, "stage", (*at, "next", decision, "exhausted"))
    return errors


def _check_decisions(loaded: LoadedInstitution, index: int, suggest: Hints) -> list[SpecError]:
    stage = loaded.institution.stages[index]
    at = ("stages", index)
    errors: list[SpecError] = []
    err = loaded.error
    vocabulary = stage.vocabulary
    for j, decision in enumerate(stage.decisions or []):
        if decision == UNPARSABLE:
            errors.append(
                err(
                    (*at, "decisions", j),
                    "'unparsable' is implicit for every stage; "
                    "route it under next: but do not list it",
                )
            )
        elif decision not in vocabulary:
            errors.append(
                err(
                    (*at, "decisions", j),
                    f"a {stage.kind} stage cannot return '{quoted(decision)}'"
                    f"{suggest(decision, vocabulary)}; it may return: "
                    f"{', '.join(vocabulary)}",
                )
            )
    if stage.decisions is not None and len(set(stage.decisions)) != len(stage.decisions):
        errors.append(err((*at, "decisions"), "a decision is listed twice"))
    if isinstance(stage, VoteStage) and stage.decisions is not None:
        if "no_quorum" in stage.decisions and stage.quorum is None:
            errors.append(err((*at, "decisions"), "'no_quorum' needs a quorum: set quorum: 0.5"))
        if stage.quorum is not None and "no_quorum" not in stage.decisions:
            errors.append(
                err(
                    (*at, "decisions"),
                    "a vote with a quorum may return 'no_quorum': list it and route it",
                )
            )
    if errors:
        return errors
    possible = stage.possible_decisions
    for decision in possible:
        if decision not in stage.next:
            errors.append(
                err(
                    (*at, "next") if stage.next else at,
                    f"decision '{decision}' of stage '{stage.id}' is not routed: add "
                    f"'{decision}: STAGE' under next:",
                )
            )
    for decision in stage.next:
        if decision not in possible:
            errors.append(
                err(
                    (*at, "next", decision),
                    f"stage '{stage.id}' never returns '{quoted(decision)}'"
                    f"{suggest(decision, possible)}; it returns: {', '.join(possible)}",
                )
            )
    return errors


def _check_graph(loaded: LoadedInstitution) -> list[SpecError]:
    inst = loaded.institution
    err = loaded.error
    errors: list[SpecError] = []
    terminals = terminal_ids(inst)
    if not terminals:
        return [err(("stages",), "no terminal stage: add a stage with kind: terminal")]
    successors: dict[str, list[str]] = {s.id: [] for s in inst.stages}
    predecessors: dict[str, list[str]] = {s.id: [] for s in inst.stages}
    edges = stage_edges(inst)
    for edge in edges:
        successors[edge.source].append(edge.target)
        predecessors[edge.target].append(edge.source)
    reachable = _reach([inst.entry], successors)
    finishing = _reach(terminals, predecessors)  # one search from all terminals at once
    for i, stage in enumerate(inst.stages):
        at = ("stages", i, "id")
        if stage.id not in reachable:
            errors.append(
                err(
                    at,
                    f"stage '{stage.id}' can never be reached from the entry "
                    f"'{inst.entry}': route a decision to it or remove it",
                )
            )
        if stage.id not in finishing:
            errors.append(
                err(
                    at,
                    f"no terminal stage can be reached from stage '{stage.id}': "
                    "an item there would never end",
                )
            )
    for cycle in unbounded_cycles(edges):
        loop = " -> ".join([*(e.source for e in cycle), cycle[0].source])
        errors.append(
            err(
                cycle[0].path,
                f"the loop {loop} has no bound: give one of its routes or stages "
                "max_visits and exhausted",
            )
        )
    return errors


def _reach(starts: Iterable[str], neighbours: dict[str, list[str]]) -> set[str]:
    """Every node reachable from any start (the starts included), in linear time."""
    seen = set(starts)
    todo = list(seen)
    while todo:
        for nxt in neighbours[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _check_pattern(loaded: LoadedInstitution) -> list[SpecError]:
    inst = loaded.institution
    err = loaded.error
    kinds = Counter(s.kind for s in inst.stages)
    if inst.pattern == "pipeline":
        return [
            err(
                ("stages", i, "kind"),
                f"a pipeline has no gates, but stage '{s.id}' is a "
                f"{s.kind}; use pattern gated_pipeline or consensus",
            )
            for i, s in enumerate(inst.stages)
            if s.kind in GATE_KINDS
        ]
    if inst.pattern == "gated_pipeline" and not kinds["review"]:
        return [err(("pattern",), "a gated_pipeline needs at least one review stage")]
    if inst.pattern == "consensus" and not kinds["vote"]:
        return [err(("pattern",), "a consensus institution needs at least one vote stage")]
    if inst.pattern == "autonomous_cluster":
        clusters = {s.id for s in inst.stages if s.kind == "cluster"}
        orchestrated = any(
            e.target in clusters and inst.stage(e.source).kind in ("propose", "draft")
            for e in stage_edges(inst)
        )
        if not orchestrated:
            return [
                err(
                    ("pattern",),
                    "an autonomous_cluster needs a cluster stage dispatched by "
                    "an orchestrating propose or draft stage",
                )
            ]
    return []


def load_checked(path: Path) -> LoadedInstitution | LoadedManifest | LoadedExperiment:
    """Load a spec and run every static check; raise SpecInvalid with all errors found."""
    loaded = load_spec(path)
    if isinstance(loaded, LoadedManifest):
        errors = check_manifest(loaded)
    elif isinstance(loaded, LoadedInstitution):
        errors = check_institution(loaded)
    else:
        from govern.experiments.spec import check_experiment

        errors = check_experiment(loaded)
    if errors:
        raise SpecInvalid(errors)
    return loaded


def checked_institution(
    loaded: LoadedInstitution | LoadedManifest | LoadedExperiment,
) -> Institution:
    if not isinstance(loaded, LoadedInstitution | LoadedManifest):
        raise SpecInvalid(
            [
                loaded.source.error(
                    ("kind",),
                    "an experiment is a grid of institutions, not one: give one of the "
                    "institution files or manifests it lists",
                )
            ]
        )
    return (
        loaded.institution.institution if isinstance(loaded, LoadedManifest) else loaded.institution
    )
