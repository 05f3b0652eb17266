"""A review's own decision words: declared with a meaning, routed by name, acting as meant."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from govern.engine.compile import compile_institution
from govern.engine.context import RunContext
from govern.engine.state import initial_state
from govern.models.router import ModelRouter
from govern.models.sim.client import SimClient
from govern.models.sim.params import PRESETS
from govern.models.sim.scripted import ScriptedClient
from govern.spec.checks import checked_institution, load_checked
from govern.spec.errors import SpecInvalid
from govern.tasks.gsm8k import GSM8K
from tests.engine_harness import run_item

COUNCIL = """\
id: council
name: A council with its own words
era: test
pattern: gated_pipeline
history: The Ten could annul a decree or refer it back for correction.
roles:
  - {id: drafter, title: Drafter, instructions: Draft the answer.}
  - {id: ten, title: Council of Ten, instructions: Examine the decree.}
entry: draft
stages:
  - id: draft
    kind: propose
    role: drafter
    purpose: Draft.
    next: {done: examine, unparsable: {to: draft, max_visits: 1, exhausted: failed}}
  - id: examine
    kind: review
    role: ten
    purpose: Examine the decree.
    decisions: [approve, annul, refer]
    means: {annul: veto, refer: amend}
    next:
      approve: enacted
      annul: {to: annulled}
      refer: enacted
      unparsable: enacted
  - {id: enacted, kind: terminal}
  - {id: annulled, kind: terminal, outcome: rejected}
  - {id: failed, kind: terminal, outcome: rejected}
"""


def council(tmp_path: Path, text: str = COUNCIL):
    path = tmp_path / "council.yaml"
    path.write_text(text)
    return checked_institution(load_checked(path))


def test_an_own_word_routes_by_its_name_and_acts_as_its_meaning(tmp_path: Path) -> None:
    client = ScriptedClient({"draft": ["7"], "examine": ["annul"]})
    state = run_item(council(tmp_path), client)
    assert state["path"] == ["draft", "examine", "annulled"]
    assert state["outcome"] == "rejected"
    assert "DECISION: annul" in state["feedback"]  # a veto-like word sends its reasons back
    prompt = client.requests[-1].messages[-1]["content"]
    assert "annul (to block it)" in prompt and "refer (to put your corrected answer" in prompt


def test_an_amend_like_word_needs_its_answer_line(tmp_path: Path) -> None:
    state = run_item(council(tmp_path), ScriptedClient({"draft": ["7"], "examine": ["refer"]}))
    # the scripted reviewer gives no answer line: an amendment that cannot be applied
    assert state["turns"][-1]["decision"] is None
    assert state["candidate"]["answer"] == "7"


def test_the_simulator_uses_the_declared_words(tmp_path: Path) -> None:
    inst = council(tmp_path)
    router = ModelRouter(clients={"sim/weak": SimClient(PRESETS["weak"])})
    context = RunContext(inst, GSM8K(), router, {r.id: "sim/weak" for r in inst.roles})
    compiled = compile_institution(inst)
    decisions = set()
    for n in range(60):
        item = f"item{n}"
        context.golds[item] = str(n + 2)
        state = asyncio.run(
            compiled.graph.ainvoke(
                initial_state(item, "What is 1 + 1?"),
                {"recursion_limit": compiled.recursion_limit},
                context=context,
            )
        )
        decisions |= {t.get("decision") for t in state["turns"] if t["stage"] == "examine"}
    assert {"approve", "annul", "refer"} <= decisions
    assert not decisions & {"reject", "veto", "amend"}


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("    means: {annul: veto, refer: amend}\n", "", "decisions", "declare what your own"),
        ("means: {annul: veto, refer: amend}", "means: {annul: veto, refer: amend, x: veto}",
         "means", "not listed under decisions"),
        ("annul: veto,", "annul: quash,", "means", "approve"),
        ("      annul: {to: annulled}\n", "", "next", "'annul' of stage 'examine' is not routed"),
    ],
)  # fmt: skip
def test_own_words_are_checked_with_their_lines(
    tmp_path: Path, old: str, new: str, where: str, message: str
) -> None:
    assert old in COUNCIL
    with pytest.raises(SpecInvalid) as raised:
        council(tmp_path, COUNCIL.replace(old, new))
    text = str(raised.value)
    assert message in text
    assert "council.yaml:" in text.splitlines()[0]


@pytest.mark.parametrize("mode", ["tolerant", "flexible"])
def test_own_words_with_underscores_survive_markdown(mode: str) -> None:
    from govern.engine.formats import parse_decision

    allowed = ("approve", "break_session", "a")
    assert parse_decision("No.\n**DECISION: break_session**", allowed, mode) == "break_session"
    assert parse_decision("No.\n_DECISION: approve_", allowed, mode) == "approve"
    assert parse_decision("No.\nDECISION: a_", allowed, mode) == "a"  # a trailing mark
