"""Oversight at run time: which watched transitions are examined, and what an intervention does."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govern.engine import compile as compile_module
from govern.engine.compile import compile_institution
from govern.engine.context import RunContext
from govern.engine.formats import oversight_format, parse_decision
from govern.engine.routing import oversight_counter
from govern.engine.state import initial_state
from govern.governance.controller import Controller
from govern.governance.oversight import examined
from govern.models.base import ModelError, ModelRequest, ModelResponse
from govern.models.router import ModelRouter
from govern.models.sim.client import SimClient, sim_response
from govern.models.sim.params import PRESETS
from govern.models.sim.scripted import ScriptedClient
from govern.spec.checks import check_institution, checked_institution, load_checked
from govern.spec.graph import Edge, stage_edges, unbounded_cycles
from govern.spec.loader import load_institution
from govern.spec.models import Budgets, Institution
from govern.tasks.gsm8k import GSM8K
from tests.engine_harness import institution_at

SPEC = """\
id: overseen
name: Overseen pipeline
era: none
pattern: gated_pipeline
history: A proposal is reviewed and carried out, under a censor who may annul or stop it.
roles:
  - {{id: proposer, title: Proposer, instructions: Propose an answer.}}
  - {{id: reviewer, title: Reviewer, instructions: Review the proposal.}}
  - {{id: executor, title: Executor, instructions: Carry out the proposal.}}
  - {{id: censor, title: Censor, instructions: Intervene only when it is wrong.}}
entry: propose
stages:
  - id: propose
    kind: propose
    role: proposer
    purpose: Propose an answer.
    next: {{done: review, unparsable: review}}
  - id: review
    kind: review
    role: reviewer
    decisions: [approve, reject]
    purpose: Review the proposal.
    next:
      approve: execute
      reject: {{to: propose, max_visits: 2, exhausted: execute}}
      unparsable: execute
  - id: execute
    kind: execute
    role: executor
    purpose: Carry out the proposal.
    next: {{done: done, unparsable: done}}
  - id: done
    kind: terminal
    outcome: completed
  - id: rejected_terminal
    kind: terminal
    outcome: rejected
oversight:
  - role: censor
    watches: [propose, execute]
    rate: {rate}
    interventions: {{annul: propose, stop: rejected_terminal}}
    max_interventions: 2
"""
WATCHED = ("propose", "execute")
ANNUL = "The arithmetic in the proposal is wrong; redo the second step."


def institution(tmp_path: Path, rate: str = "1") -> Institution:
    path = tmp_path / f"overseen_{rate.replace('/', '_')}.yaml"
    path.write_text(SPEC.format(rate=rate))
    return checked_institution(load_checked(path))


class OverseerScript(ScriptedClient):
    """A scripted run whose overseer follows its own script: watched stage -> one word per
    visit of that stage (the last repeats; ``!`` is unparsable, ``error`` a failed call)."""

    def __init__(self, script: dict[str, list[Any]], oversee: dict[str, list[str]]) -> None:
        super().__init__(script)
        self.oversee = oversee

    async def complete(self, request: ModelRequest) -> ModelResponse:
        oracle = request.oracle
        if oracle.act != "oversee":
            return await super().complete(request)
        self.requests.append(request)
        words = self.oversee.get(oracle.stage, ["uphold"])
        word = words[min(oracle.visit, len(words)) - 1]
        if word == "error":
            raise ModelError(request.model, "server error", attempts=3)
        text = "No view either way." if word == "!" else f"{ANNUL}\nDECISION: {word}"
        return sim_response(request, text, 0.0)


def run(
    inst: Institution,
    client: Any,
    items: list[str],
    *,
    seed: int = 0,
    golds: dict[str, str] | None = None,
    budgets: Budgets | None = None,
    model: str = "test/model",
) -> tuple[list[dict[str, Any]], Controller]:
    controller = Controller(inst, seed=seed)
    context = RunContext(
        inst,
        GSM8K(),
        ModelRouter(clients={model: client}),
        {r.id: model for r in inst.roles},
        seed=seed,
        budgets=budgets or Budgets(),
        golds=golds or dict.fromkeys(items, "1"),
        controller=controller,
    )
    compiled = compile_institution(inst)

    async def all_items() -> list[dict[str, Any]]:
        config = {"recursion_limit": compiled.recursion_limit}
        return [
            await compiled.graph.ainvoke(
                initial_state(item, "What is 1 + 0?"), config, context=context
            )
            for item in items
        ]

    return asyncio.run(all_items()), controller


def bodies(controller: Controller, kind: str) -> list[dict[str, Any]]:
    return [e["body"] for e in controller.ledger.of_kind(kind)]


def interventions(controller: Controller) -> list[dict[str, Any]]:
    return [b for b in bodies(controller, "transition") if b["rule"].startswith("oversight:")]


def oversee_turns(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in state["turns"] if t["act"] == "oversee"]


# -- who is examined ---------------------------------------------------------------------------


def test_at_rate_one_every_watched_transition_is_examined_and_no_other(tmp_path: Path) -> None:
    inst = institution(tmp_path)
    items = [f"item-{n}" for n in range(4)]
    script = {"review": ["reject", "approve"]}  # each item proposes twice
    states, controller = run(inst, OverseerScript(script, {}), items)
    entries = bodies(controller, "oversight")
    examined_runs = Counter((b["item"], b["stage"], b["visit"]) for b in entries)
    for state in states:
        assert state["outcome"] == "completed"
        runs = Counter(state["path"])
        watched_runs = {
            (state["item_id"], stage, visit)
            for stage in WATCHED
            for visit in range(1, runs[stage] + 1)
        }
        mine = {key for key in examined_runs if key[0] == state["item_id"]}
        assert mine == watched_runs
        assert len(oversee_turns(state)) == runs["propose"] + runs["execute"] == 3
    assert all(n == 1 for n in examined_runs.values())
    assert all(b["sampled"] and b["rate"] == "1" and b["role"] == "censor" for b in entries)
    assert not any(b["stage"] == "review" for b in entries)


def test_at_a_fifth_about_a_fifth_is_examined_the_same_for_the_same_seed(tmp_path: Path) -> None:
    inst = institution(tmp_path, "1/5")
    draws = [
        (f"item-{n}", stage, visit) for n in range(150) for stage in WATCHED for visit in (1, 2)
    ]

    def sampled(seed: int) -> set[tuple[str, str, int]]:
        controller = Controller(inst, seed=seed)
        chosen = {d for d in draws if controller.oversee(*d, {}) == [0]}
        entries = bodies(controller, "oversight")
        assert len(entries) == len(draws)  # every draw is written, examined or not
        assert {(b["item"], b["stage"], b["visit"]) for b in entries if b["sampled"]} == chosen
        assert {b["rate"] for b in entries} == {"1/5"}
        return chosen

    first = sampled(7)
    expected, sigma = len(draws) / 5, math.sqrt(len(draws) * Fraction(1, 5) * Fraction(4, 5))
    assert abs(len(first) - expected) <= 4 * sigma
    assert sampled(7) == first
    assert sampled(8) != first
    assert Controller(inst, seed=7).oversee("item-0", "review", 1, {}) == []  # not watched


@given(
    st.integers(0, 2**63 - 1),
    st.text(max_size=12),
    st.integers(1, 50),
    st.integers(0, 3),
    st.fractions(0, 1),
    st.fractions(0, 1),
)
def test_a_higher_rate_examines_all_a_lower_one_does(
    seed: int, item: str, visit: int, index: int, a: Fraction, b: Fraction
) -> None:
    low, high = sorted((a, b))
    if examined(seed, item, "stage", visit, index, low):
        assert examined(seed, item, "stage", visit, index, high)
    assert examined(seed, item, "stage", visit, index, Fraction(1))
    assert not examined(seed, item, "stage", visit, index, Fraction(0))


# -- what an intervention does ------------------------------------------------------------------


def test_annul_sends_the_item_back_with_the_overseers_reasons(tmp_path: Path) -> None:
    inst = institution(tmp_path)
    client = OverseerScript({"propose": ["7", "1"]}, {"propose": ["annul", "uphold"]})
    (state,), controller = run(inst, client, ["item"])
    assert state["path"] == ["propose", "propose", "review", "execute", "done"]
    assert state["outcome"] == "completed"
    assert state["candidate"]["answer"] == "1"
    assert state["visits"][oversight_counter(0)] == 1
    (moved,) = interventions(controller)
    assert moved["status"] == "applied"
    assert moved["via"] == "oversight"
    assert moved["rule"] == "oversight:censor:annul"
    assert moved["overrides"] == "done->review"
    assert (moved["stage"], moved["decision"], moved["to"]) == ("propose", "annul", "propose")
    assert moved["actor"] == "censor#1"
    # the applied stage transition comes first, then the intervention that overrides it
    kinds = [(e["kind"], e["body"].get("rule")) for e in controller.ledger.entries]
    assert kinds.index(("transition", "route:propose->review")) < kinds.index(
        ("transition", "oversight:censor:annul")
    )
    first, second, on_execute = oversee_turns(state)
    assert (first["decision"], first["oversight"], first["parsed"]) == ("annul", True, True)
    assert (second["stage"], second["visit"], second["decision"]) == ("propose", 2, "uphold")
    assert (on_execute["stage"], on_execute["decision"]) == ("execute", "uphold")
    proposals = [
        r for r in client.requests if r.oracle.stage == "propose" and r.oracle.act != "oversee"
    ]
    assert ANNUL in proposals[1].messages[-1]["content"]
    assert proposals[1].oracle.feedback
    oversee_prompt = next(r for r in client.requests if r.oracle.act == "oversee")
    assert (
        "decided 'done', which sends the item to review" in oversee_prompt.messages[-1]["content"]
    )
    assert oversee_prompt.oracle.decisions == ("annul", "stop", "uphold")


def test_stop_ends_the_item_at_the_named_terminal(tmp_path: Path) -> None:
    inst = institution(tmp_path)
    (state,), controller = run(inst, OverseerScript({}, {"execute": ["stop"]}), ["item"])
    assert state["path"] == ["propose", "review", "execute", "rejected_terminal"]
    assert state["outcome"] == "rejected"
    (moved,) = interventions(controller)
    assert (moved["to"], moved["overrides"]) == ("rejected_terminal", "done->done")


def test_after_max_interventions_the_overseer_is_not_consulted(tmp_path: Path) -> None:
    inst = institution(tmp_path)
    (state,), controller = run(inst, OverseerScript({}, {"propose": ["annul"]}), ["item"])
    assert state["path"] == ["propose"] * 3 + ["review", "execute", "done"]
    assert [t["decision"] for t in oversee_turns(state)] == ["annul", "annul"]
    assert len(interventions(controller)) == 2
    assert [(b["stage"], b["visit"]) for b in bodies(controller, "oversight")] == [
        ("propose", 1),
        ("propose", 2),
    ]


def test_an_unparsable_overseer_upholds_and_is_recorded_as_unparsable(tmp_path: Path) -> None:
    inst = institution(tmp_path)
    (state,), controller = run(inst, OverseerScript({}, {"propose": ["!"]}), ["item"])
    assert state["path"] == ["propose", "review", "execute", "done"]
    first = oversee_turns(state)[0]
    assert (first["parsed"], first["decision"]) == (False, None)
    assert state["unparsable"] == 0  # no stage decision was unparsable
    assert interventions(controller) == []
    assert next(b["parsed"] for b in bodies(controller, "turn") if b["act"] == "oversee") is False


def test_a_failed_overseer_call_ends_the_item(tmp_path: Path) -> None:
    inst = institution(tmp_path)
    (state,), controller = run(inst, OverseerScript({}, {"execute": ["error"]}), ["item"])
    assert state["outcome"] == "error"
    assert state["path"] == ["propose", "review", "execute"]
    assert state["errors"] == ["execute: test/model: server error after 3 attempts"]
    assert state["failed_attempts"] == 3
    assert bodies(controller, "transition")[-1]["rule"] == "policy:error"


def test_the_items_budget_holds_after_an_overseers_call(tmp_path: Path) -> None:
    inst = institution(tmp_path)
    client = OverseerScript({}, {"propose": ["annul"]})
    budgets = Budgets(max_calls_per_item=2)  # the proposal, then the overseer's call
    (state,), controller = run(inst, client, ["item"], budgets=budgets)
    assert state["outcome"] == "cut_off"
    assert state["path"] == ["propose"]
    assert state["calls"] == 2
    last = bodies(controller, "transition")[-1]
    assert (last["status"], last["decision"], last["rule"]) == (
        "stopped",
        "annul",
        "policy:cut_off",
    )
    assert interventions(controller) == []


def test_the_controller_refuses_an_intervention_it_cannot_allow(tmp_path: Path) -> None:
    inst = institution(tmp_path)
    controller = Controller(inst)
    assert (
        controller.intervene("i", "propose", 0, "annul", "proposer#1", {}, "done->review") is None
    )
    spent = {oversight_counter(0): 2}
    assert controller.intervene("i", "propose", 0, "annul", "censor#1", spent, "x") is None
    assert controller.intervene("i", "propose", 0, "pardon", "censor#1", {}, "x") is None
    refused = bodies(controller, "transition")
    assert [b["status"] for b in refused] == ["blocked"] * 3
    assert refused[0]["reason"] == "the actor may not act"
    assert refused[2]["evidence"][0]["predicate"] == "decision_not_allowed"
    moved = controller.intervene("i", "execute", 0, "annul", "censor#1", {"propose": 9}, "x")
    assert moved is not None and (moved.target, moved.counters) == ("propose", {"oversight#0": 1})


def test_an_intervention_into_a_used_up_stage_goes_to_its_exhausted(tmp_path: Path) -> None:
    bounded = SPEC.format(rate="1").replace(
        "    role: proposer\n",
        "    role: proposer\n    max_visits: 2\n    exhausted: rejected_terminal\n",
    )
    path = tmp_path / "bounded.yaml"
    path.write_text(bounded)
    inst = checked_institution(load_checked(path))
    (state,), controller = run(inst, OverseerScript({}, {"propose": ["annul"]}), ["item"])
    assert state["path"] == ["propose", "propose", "rejected_terminal"]
    first, second = interventions(controller)
    assert (first["to"], first["via"]) == ("propose", "oversight")
    assert (second["to"], second["via"]) == ("rejected_terminal", "stage_exhausted")
    assert second["evidence"][0]["predicate"] == "loop_bound_hit"
    assert state["visits"][oversight_counter(0)] == 2


def test_a_simulated_overseer_intervenes_on_wrong_candidates(tmp_path: Path) -> None:
    inst = institution(tmp_path)
    items = [f"item-{n}" for n in range(40)]
    golds = {item: str(10 + n) for n, item in enumerate(items)}
    states, controller = run(
        inst, SimClient(PRESETS["weak"]), items, seed=3, golds=golds, model="sim/weak"
    )
    assert all(s["outcome"] in ("completed", "rejected", "no_answer") for s in states)
    wrong_annulled = 0
    for state in states:
        turns = state["turns"]
        for n, turn in enumerate(turns):
            if turn["act"] == "oversee" and turn["decision"] in ("annul", "stop"):
                judged = turns[n - 1]  # the stage's own turn, just before
                assert (judged["stage"], judged["visit"]) == (turn["stage"], turn["visit"])
                wrong_annulled += judged["answer"] != golds[state["item_id"]]
    assert wrong_annulled > 0
    assert len(interventions(controller)) >= wrong_annulled
    assert all(b["status"] == "applied" for b in interventions(controller))


# -- the spec and the graph ---------------------------------------------------------------------


def test_static_checks_prove_termination_with_oversight_loops(tmp_path: Path) -> None:
    inst = institution(tmp_path)
    path = tmp_path / "overseen_1.yaml"
    assert check_institution(load_institution(path)) == []
    edges = stage_edges(inst)
    overseen = [e for e in edges if e.via == "oversight"]
    assert {(e.source, e.decision, e.target) for e in overseen} == {
        (s, w, t) for s in WATCHED for w, t in (("annul", "propose"), ("stop", "rejected_terminal"))
    }
    assert all(e.bounded for e in overseen)
    assert unbounded_cycles(edges) == []
    # were the interventions unbounded, execute -> propose -> review -> execute would not end
    loose = [e if e.via != "oversight" else _unbounded(e) for e in edges]
    assert unbounded_cycles(loose) != []


def _unbounded(edge: Edge) -> Edge:
    return replace(edge, bounded=False)


def test_only_institutions_with_oversight_are_wrapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(action: Any, stage_id: str) -> Any:
        raise AssertionError(f"{stage_id} was wrapped")

    monkeypatch.setattr(compile_module, "overseen", refuse)
    compile_module._compile(institution_at("institutions/tang.yaml"), "no-oversight")
    with pytest.raises(AssertionError, match="propose was wrapped"):
        compile_module._compile(institution(tmp_path), "oversight")


# -- the format ---------------------------------------------------------------------------------

WORDS = st.lists(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), min_size=1, max_size=4)


@given(WORDS, st.data())
def test_the_oversight_format_reads_uphold_and_every_intervention(
    words: list[str], data: st.DataObject
) -> None:
    interventions = {w: "somewhere" for w in words if w != "uphold"}
    allowed = ("uphold", *interventions)
    word = data.draw(st.sampled_from(allowed))
    text = f"My reasons.\nDECISION: {word}"
    # tolerant and flexible reading take markdown emphasis off a line, and underscores
    # inside words with it (formats.undecorated): such words are read in strict mode only
    modes = ("strict",) if "_" in word else ("strict", "tolerant", "flexible")
    for mode in modes:
        assert parse_decision(text, allowed, mode) == word
    assert parse_decision("My reasons.\nDECISION: pardonx", allowed) is None
    prompt = oversight_format(interventions).prompt()
    assert "`DECISION: uphold`" in prompt
    assert all(f"`DECISION: {w}` sends the item to somewhere" in prompt for w in interventions)
