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

import networkx as nx

from govern.spec.errors import SpecError, SpecInvalid, quoted
from govern.spec.graph import stage_edges, terminal_ids, unbounded_cycles
from govern.spec.loader import LoadedInstitution, LoadedManifest, load_spec

if TYPE_CHECKING:
    from govern.experiments.spec import LoadedExperiment
from govern.spec.models import (
    GATE_KINDS,
    HELD,
    UNPARSABLE,
    VACANT,
    VETOED,
    ChosenBy,
    DecomposeStage,
    Institution,
    IntegrateStage,
    LotStage,
    NominateStage,
    OfficeStage,
    ReviewStage,
    SoloStage,
    VoteStage,
)
from govern.spec.validation import Hints, listing, validate_data


def check_institution(loaded: LoadedInstitution) -> list[SpecError]:
    errors = _check_references(loaded)
    if not errors:
        errors = _check_graph(loaded) + _check_pattern(loaded)
    if not errors:
        errors = _check_order(loaded)
    return errors


def check_manifest(loaded: LoadedManifest) -> list[SpecError]:
    errors = check_institution(loaded.institution) + _check_governance(loaded)
    role_ids = [r.id for r in loaded.institution.institution.roles]
    suggest = Hints()
    stage_ids = [s.id for s in loaded.institution.institution.stages]
    named = (
        (("models", "roles"), loaded.manifest.models.roles, role_ids, "role"),
        (("models", "seats"), loaded.manifest.models.seats, role_ids, "role"),
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
    task = loaded.manifest.task
    if task is not None and task.disks is not None and task.name != "hanoi":
        errors.append(
            loaded.source.error(
                ("task", "disks"), f"disks is for task hanoi (the Towers of Hanoi), not {task.name}"
            )
        )
    roles = {r.id: r for r in loaded.institution.institution.roles}
    for key in ("roles", "seats"):
        for role_id in getattr(loaded.manifest.models, key):
            if role_id in roles and roles[role_id].office is not None:
                errors.append(
                    loaded.source.error(("models", key, role_id), office_model_error(role_id))
                )
    for role_id, models in loaded.manifest.models.seats.items():
        if role_id in roles and len(models) != roles[role_id].seats:
            errors.append(
                loaded.source.error(
                    ("models", "seats", role_id),
                    f"{len(models)} models for the {roles[role_id].seats} seat(s) of "
                    f"'{role_id}': give one per seat",
                )
            )
    stages = {s.id: s for s in loaded.institution.institution.stages}
    for stage_id, settings in loaded.manifest.sampling.stages.items():
        kind = stages[stage_id].kind if stage_id in stages else None
        if settings.samples and kind not in (None, "vote", "cluster", "nominate"):
            errors.append(
                loaded.source.error(
                    ("sampling", "stages", stage_id, "samples"),
                    f"stage '{stage_id}' is a {kind} stage, asked once: samples are for "
                    "stages that ask several seats (vote, cluster, nominate); set its sampling "
                    "directly",
                )
            )
    return errors


def _check_governance(loaded: LoadedManifest) -> list[SpecError]:
    """The overlay names real states, roles and Oracle predicates."""
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
    errors += _check_clock(loaded)
    for i, rule in enumerate(overlay.rules):
        suspended = rule.sanction is not None and rule.sanction.kind == "suspension"
        if suspended and rule.to in acting:
            err(
                ("rules", i, "to"),
                f"a suspension moves the agent to '{rule.to}', a state that "
                "may act: suspend into a state not listed in acting",
            )
    names = sorted({rule.name for rule in overlay.rules})
    for i, norm in enumerate(overlay.norms):
        for j, name in enumerate(norm.rules):
            if name not in names:
                err(
                    ("norms", i, "rules", j),
                    f"no rule named '{name}'{suggest(name, names)}; rules: {listing(names)}",
                )
    roles = [r.id for r in loaded.institution.institution.roles]
    stand_in = overlay.stand_in.role
    if stand_in is not None and stand_in not in set(roles):
        err(
            ("stand_in", "role"),
            f"no role '{stand_in}'{suggest(stand_in, roles)}; roles: {listing(roles)}",
        )
    return errors


MARKETLESS_SANCTIONS = ("replacement", "loss_of_vote")  # a firm has no vote and no successor


def _check_clock(loaded: LoadedManifest) -> list[SpecError]:
    """An overlay counts time in items (agent predicates) or in market rounds (the market's
    signals), never both; its predicates exist, and its sanctions, restorations and signal
    parameters are in its own units."""
    from govern.governance.oracle import AGENT_PREDICATES, market_predicates

    overlay = loaded.manifest.governance
    assert overlay is not None
    errors: list[SpecError] = []
    suggest = Hints()
    market = market_predicates()

    def err(path: tuple, message: str) -> None:
        errors.append(loaded.source.error(("governance", *path), message))

    known = sorted(AGENT_PREDICATES | set(market))
    kinds: set[str] = set()
    for i, rule in enumerate(overlay.rules):
        evidence = rule.evidence
        at = ("rules", i, "evidence")
        kind: str | None = None  # what this rule's evidence counts time in
        if evidence.any_of is not None:
            for j, predicate in enumerate(evidence.any_of):
                if predicate not in market:
                    err(
                        (*at, "any_of", j),
                        f"no market signal '{predicate}'{suggest(predicate, sorted(market))}; "
                        f"any_of takes: {', '.join(sorted(market))}",
                    )
            kind = "rounds"
        elif evidence.predicate in market:
            kind = "rounds"
        elif evidence.predicate in AGENT_PREDICATES:
            kind = "items"
        else:
            predicate = str(evidence.predicate)
            err(
                (*at, "predicate"),
                f"no predicate '{predicate}'{suggest(predicate, known)}; predicates: "
                + ", ".join(known),
            )
        if kind is not None:
            kinds.add(kind)
        if kind == "rounds" and (evidence.count or evidence.window):  # this rule's, not others'
            key = "count" if evidence.count else "window"
            err(
                (*at, key),
                f"a market signal takes no {key}: its windows are set under signals:",
            )
    if kinds == {"items", "rounds"}:
        err(
            ("rules",),
            "this overlay mixes agent predicates (time in items) with market signals "
            "(time in market rounds): a regime counts one or the other",
        )
        return errors
    rounds = kinds == {"rounds"}
    unit, other = ("rounds", "items") if rounds else ("items", "rounds")
    for i, rule in enumerate(overlay.rules):
        if rounds and rule.sanction is not None and rule.sanction.kind in MARKETLESS_SANCTIONS:
            err(
                ("rules", i, "sanction", "kind"),
                f"a firm in a market cannot be given {rule.sanction.kind}: a market regime "
                "warns, fines or suspends",
            )
        if rule.sanction is not None and getattr(rule.sanction, other) is not None:
            err(
                ("rules", i, "sanction", other),
                f"this overlay counts time in {unit}: say {unit}: N",
            )
    for i, way in enumerate(overlay.restorations):
        if getattr(way, f"clean_{other}") is not None:
            err(
                ("restorations", i, f"clean_{other}"),
                f"this overlay counts time in {unit}: say clean_{unit}: N",
            )
    for predicate, values in overlay.signals.items():
        if predicate not in market:
            err(
                ("signals", predicate),
                f"no market signal '{predicate}'{suggest(predicate, sorted(market))}; "
                f"signals: {', '.join(sorted(market))}",
            )
            continue
        try:  # reported as any key of the file is: unknown keys named, bounds at the value
            prefix = ("governance", "signals", predicate)
            validate_data(market[predicate][1], values, loaded.source, prefix)
        except SpecInvalid as exc:
            errors += exc.errors
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
    errors += _check_offices(loaded)
    for i, oversight in enumerate(inst.oversight):
        at = ("oversight", i)
        known(oversight.role, role_ids, "role", (*at, "role"))
        if oversight.role in known_ids["role"] and inst.role(oversight.role).office:
            errors.append(
                err(
                    (*at, "role"),
                    f"'{oversight.role}' is an office, which may be vacant when an item "
                    "begins; an overseer watches from the start: give it a role of its own",
                )
            )
        for j, watched in enumerate([] if oversight.watches == "all" else oversight.watches):
            known(watched, stage_ids, "stage", (*at, "watches", j))
            if watched in known_ids["stage"] and not inst.stage(watched).calls_model:
                errors.append(
                    err(
                        (*at, "watches", j),
                        f"stage '{watched}' asks no agent, so there is nothing to oversee",
                    )
                )
        for word, target in oversight.interventions.items():
            known(target, stage_ids, "stage", (*at, "interventions", word))
    bounded_stages = {s.id for s in inst.stages if getattr(s, "max_visits", None)}
    for i, stage in enumerate(inst.stages):
        at = ("stages", i)
        if isinstance(stage, SoloStage):
            known(stage.role, role_ids, "role", (*at, "role"))
        if isinstance(stage, DecomposeStage):
            for field in ("planner", "integrator"):
                if getattr(stage, field) is not None:
                    known(getattr(stage, field), role_ids, "role", (*at, field))
        for field in _BODY_FIELDS.get(stage.kind, ()):
            errors += _check_body(loaded, i, field, known)
        if isinstance(stage, VoteStage):
            if stage.chair:
                known(stage.chair, role_ids, "role", (*at, "chair"))
            voters = set(stage.actors)
            for role_id in stage.weights or {}:
                if role_id not in voters:
                    errors.append(
                        err(
                            (*at, "weights", role_id),
                            f"'{role_id}' has a weight but is not a voter of this stage",
                        )
                    )
            for j, role_id in enumerate(stage.veto_by or []):
                known(role_id, role_ids, "role", (*at, "veto_by", j))
                listed = isinstance(stage.voters, list) and role_id in known_ids["role"]
                if listed and role_id not in voters:
                    errors.append(
                        err(
                            (*at, "veto_by", j),
                            f"'{role_id}' may veto but is not a voter of this stage",
                        )
                    )
            errors += _check_vote_counts(loaded, i)
        if isinstance(stage, LotStage) and isinstance(stage.pool, list):
            size = inst.body_size(stage.pool)
            if 0 < size < stage.draw:
                errors.append(err((*at, "draw"), f"the lot draws {stage.draw} seats from {size}"))
        if isinstance(stage, LotStage | VoteStage) and getattr(stage, "fills", None):
            errors += _check_fills(loaded, i)
        if isinstance(stage, OfficeStage):
            known(stage.office, role_ids, "role", (*at, "office"))
            if stage.office in known_ids["role"] and inst.role(stage.office).office is None:
                errors.append(
                    err(
                        (*at, "office"),
                        f"role '{stage.office}' is not an office: give it office: {{term: N}}",
                    )
                )
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


# Words with a meaning of their own anywhere in the language: a review's own word may not
# take one (a 'vetoed' review would be drawn and read as a vote's veto)
RESERVED_WORDS = frozenset(
    {"done", "approve", "reject", "amend", "veto", "pass", "fail", "no_quorum", VETOED, HELD,
     VACANT, UNPARSABLE, "uphold", "exhausted", "undecided"}
)  # fmt: skip
_BODY_FIELDS = {
    "vote": ("voters",),
    "cluster": ("members",),
    "nominate": ("nominees",),
    "lot": ("pool",),
}


def _chooses(stage: object) -> bool:
    """A stage whose chosen seats a later body may take: a lot, a nomination, an election."""
    return isinstance(stage, LotStage | NominateStage) or (
        isinstance(stage, VoteStage) and stage.choice
    )


def _check_body(loaded: LoadedInstitution, index: int, field: str, known) -> list[SpecError]:
    """A body names known roles that are not offices, or a stage that chooses seats."""
    inst = loaded.institution
    stage = inst.stages[index]
    body = getattr(stage, field)
    at = ("stages", index, field)
    errors: list[SpecError] = []
    role_ids = [r.id for r in inst.roles]
    if isinstance(body, list):
        for j, role_id in enumerate(body):
            known(role_id, role_ids, "role", (*at, j))
            if role_id in set(role_ids) and inst.role(role_id).office is not None:
                errors.append(
                    loaded.error(
                        (*at, j),
                        f"'{role_id}' is an office, held by seats chosen elsewhere: a body "
                        "takes the roles they were chosen from, or {chosen_by: STAGE}",
                    )
                )
        return errors
    stage_ids = [s.id for s in inst.stages]
    known(body.chosen_by, stage_ids, "stage", (*at, "chosen_by"))
    if body.chosen_by in set(stage_ids):
        chooser = inst.stage(body.chosen_by)
        if not _chooses(chooser):
            errors.append(
                loaded.error(
                    (*at, "chosen_by"),
                    f"stage '{body.chosen_by}' is a {chooser.kind} stage and chooses no seats: "
                    "a body may come from a lot, a nominate stage or a choice vote",
                )
            )
        elif body.chosen_by == stage.id:
            errors.append(loaded.error((*at, "chosen_by"), "a body cannot be chosen by itself"))
    return errors


def _check_vote_counts(loaded: LoadedInstitution, index: int) -> list[SpecError]:
    """Counts a vote can reach: min_yes and choose within the body, a slate that exists."""
    inst = loaded.institution
    stage = inst.stages[index]
    at = ("stages", index)
    errors: list[SpecError] = []
    size = inst.body_size(stage.voters)
    if stage.min_yes is not None and 0 < size < stage.min_yes:
        errors.append(
            loaded.error(
                (*at, "min_yes"),
                f"min_yes {stage.min_yes} can never be reached by {size} voters",
            )
        )
    if stage.slate is not None:
        stage_ids = [s.id for s in inst.stages]
        if stage.slate not in set(stage_ids):
            errors.append(
                loaded.error(
                    (*at, "slate"),
                    f"no stage '{stage.slate}'{Hints()(stage.slate, stage_ids)}; "
                    f"stages: {listing(stage_ids)}",
                )
            )
        elif not isinstance(inst.stage(stage.slate), NominateStage):
            errors.append(
                loaded.error(
                    (*at, "slate"),
                    f"stage '{stage.slate}' is a {inst.stage(stage.slate).kind} stage: a slate "
                    "comes from a nominate stage",
                )
            )
        else:
            nominees = inst.body_size(inst.stage(stage.slate).nominees)
            if 0 < nominees < stage.choose:
                errors.append(
                    loaded.error(
                        (*at, "choose"),
                        f"the vote chooses {stage.choose} of a slate of {nominees}",
                    )
                )
    return errors


def _check_fills(loaded: LoadedInstitution, index: int) -> list[SpecError]:
    """An office is filled by a stage that chooses exactly as many seats as it has."""
    inst = loaded.institution
    stage = inst.stages[index]
    at = ("stages", index, "fills")
    role_ids = [r.id for r in inst.roles]
    if stage.fills not in set(role_ids):
        return [
            loaded.error(
                at,
                f"no role '{stage.fills}'{Hints()(stage.fills, role_ids)}; "
                f"roles: {listing(role_ids)}",
            )
        ]
    office = inst.role(stage.fills)
    if office.office is None:
        return [
            loaded.error(at, f"role '{stage.fills}' is not an office: give it office: {{term: N}}")
        ]
    chosen = stage.draw if isinstance(stage, LotStage) else stage.choose
    if chosen != office.seats:
        what = "draws" if isinstance(stage, LotStage) else "chooses"
        return [
            loaded.error(
                at,
                f"'{stage.fills}' has {office.seats} seat(s), but the stage {what} {chosen}: "
                "an office is filled by choosing as many seats as it has",
            )
        ]
    return []


def _check_offices(loaded: LoadedInstitution) -> list[SpecError]:
    """Every office is filled by some stage, and names no model: its holders speak on the
    models of their own seats."""
    inst = loaded.institution
    filled = {getattr(s, "fills", None) for s in inst.stages}
    errors = [
        loaded.error(
            ("roles", i, "office"),
            f"no stage fills the office '{role.id}': give a lot or a choice vote fills: {role.id}",
        )
        for i, role in enumerate(inst.roles)
        if role.office is not None and role.id not in filled
    ]
    for i, role in enumerate(inst.roles):
        for key in ("model", "models"):
            if role.office is not None and getattr(role, key) is not None:
                errors.append(loaded.error(("roles", i, key), office_model_error(role.id)))
    return errors


def office_model_error(office: str) -> str:
    return (
        f"'{office}' is an office, whose holders speak on the models of their own seats: "
        "give the model of the roles it is filled from"
    )


def _check_order(loaded: LoadedInstitution) -> list[SpecError]:
    """What a stage takes from an earlier one is there whenever an item arrives: a chosen
    body's chooser and a slate's nomination run first on every path, and an office acts only
    after an office stage found it held or a stage filled it."""
    inst = loaded.institution
    graph = nx.DiGraph()
    graph.add_nodes_from(s.id for s in inst.stages)
    edges = stage_edges(inst)
    graph.add_edges_from((e.source, e.target) for e in edges)
    dominators = nx.immediate_dominators(graph, inst.entry)

    def runs_first(first: str, then: str) -> bool:
        node = then
        while node in dominators and dominators[node] != node:
            node = dominators[node]
            if node == first:
                return True
        return False

    errors: list[SpecError] = []
    for i, stage in enumerate(inst.stages):
        needs = [
            ((field, "chosen_by"), getattr(stage, field).chosen_by)
            for field in _BODY_FIELDS.get(stage.kind, ())
            if isinstance(getattr(stage, field), ChosenBy)
        ]
        if isinstance(stage, VoteStage) and stage.slate is not None:
            needs.append((("slate",), stage.slate))
        for path, first in needs:
            # networkx leaves the entry out of its dominators: nothing runs before it
            reachable = stage.id in dominators or stage.id == inst.entry
            if reachable and not runs_first(first, stage.id):
                errors.append(
                    loaded.error(
                        ("stages", i, *path),
                        f"an item can reach '{stage.id}' without passing '{first}', whose "
                        "choice it takes: route every way to it through that stage",
                    )
                )
    for office in (r for r in inst.roles if r.office is not None):
        unfilled = nx.DiGraph()
        unfilled.add_nodes_from(graph)
        for e in edges:
            fills = getattr(inst.stage(e.source), "fills", None) == office.id
            found_held = (
                isinstance(inst.stage(e.source), OfficeStage)
                and inst.stage(e.source).office == office.id
                and e.decision == HELD
            )
            if not (fills or found_held):
                unfilled.add_edge(e.source, e.target)
        reachable = nx.descendants(unfilled, inst.entry) | {inst.entry}
        for i, stage in enumerate(inst.stages):
            if stage.id in reachable and office.id in stage.actors:
                errors.append(
                    loaded.error(
                        ("stages", i, "role"),
                        f"stage '{stage.id}' acts as the office '{office.id}', which may be "
                        "vacant when an item arrives: route to it only from the stage that "
                        f"fills the office or from an office stage's '{HELD}'",
                    )
                )
    return errors


def _check_decisions(loaded: LoadedInstitution, index: int, suggest: Hints) -> list[SpecError]:
    stage = loaded.institution.stages[index]
    at = ("stages", index)
    errors: list[SpecError] = []
    err = loaded.error
    vocabulary = stage.vocabulary
    means = stage.means if isinstance(stage, ReviewStage) else {}
    fixed = isinstance(stage, OfficeStage | DecomposeStage) and stage.decisions is not None
    if fixed and set(stage.decisions) != set(vocabulary):
        always = (
            f"an office stage may always find the office {HELD} or {VACANT}"
            if isinstance(stage, OfficeStage)
            else "a decompose stage may always end done or undecided"
        )
        errors.append(err((*at, "decisions"), f"{always}: leave out decisions: and route both"))
    for word in means:
        if word in RESERVED_WORDS and word not in vocabulary:
            errors.append(
                err(
                    (*at, "means", word),
                    f"'{word}' is a decision of govern's own (of another stage kind, or an "
                    "outcome): give your word another name",
                )
            )
        elif word in vocabulary:
            errors.append(
                err(
                    (*at, "means", word),
                    f"'{word}' is a standard decision and means itself; "
                    "give your own word a meaning instead",
                )
            )
        elif word not in (stage.decisions or []):
            errors.append(
                err(
                    (*at, "means", word),
                    f"'{word}' has a meaning but is not listed under decisions: add it there",
                )
            )
    for j, decision in enumerate(stage.decisions or []):
        if decision in means:
            continue
        if decision == UNPARSABLE:
            errors.append(
                err(
                    (*at, "decisions", j),
                    "'unparsable' is implicit for every stage; "
                    "route it under next: but do not list it",
                )
            )
        elif decision not in vocabulary and decision in RESERVED_WORDS:
            errors.append(
                err(
                    (*at, "decisions", j),
                    f"a {stage.kind} stage cannot return '{decision}', a decision of govern's "
                    f"own; it may return: {', '.join(vocabulary)}, or a word of your own",
                )
            )
        elif decision not in vocabulary:
            own = (
                f", or declare what your own word does: means: {{{quoted(decision)}: "
                "approve | reject | amend | veto}"
                if isinstance(stage, ReviewStage)
                else ""
            )
            errors.append(
                err(
                    (*at, "decisions", j),
                    f"a {stage.kind} stage cannot return '{quoted(decision)}'"
                    f"{suggest(decision, vocabulary)}; it may return: "
                    f"{', '.join(vocabulary)}{own}",
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
        if VETOED in stage.decisions and stage.veto_by is None:
            errors.append(err((*at, "decisions"), f"'{VETOED}' needs veto_by: [ROLE]"))
        if stage.veto_by is not None and VETOED not in stage.decisions:
            errors.append(
                err(
                    (*at, "decisions"),
                    f"a vote with veto_by may return '{VETOED}': list it and route it",
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
