"""The parsing policy: strict, tolerant and flexible readings of answers, decisions and
ballots, on outputs real small models wrote (quoted in the project's issue 8)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from govern.engine.formats import parse_ballot, parse_decision
from govern.run.runner import RunRequest, execute, prepare
from govern.tasks.gsm8k import GSM8K, SAMPLE
from tests.conftest import ROOT, spec_errors, write

TASK = GSM8K()
DECISIONS = ("approve", "reject", "amend")

# (output, strict, tolerant, flexible)
ANSWERS = [
    ("She has 18 left.\n#### 18", "18", "18", "18"),
    ("So the total is:\n#### $18", None, "18", "18"),
    ("**#### 18**", "18", "18", "18"),  # strict, as lm-eval's, finds the marker anywhere
    ("#### 1,234.50 dollars", "1234.5", "1234.5", "1234.5"),
    ("The answer is 18.\n#### 18\nI hope this helps!", "18", "18", "18"),
    ("#### 7\nWait, that is wrong.\n#### 9", "7", "9", "9"),  # tolerant: the last marker
    ("It is 18.", None, None, "18"),  # no marker: only flexible finds a number
    ("#### 18\nline\nline\nline\nline", "18", None, "18"),  # the marker too far up
    ("#### approve", None, None, None),
]


@pytest.mark.parametrize(("text", "strict", "tolerant", "flexible"), ANSWERS)
def test_answers_under_each_policy(
    text: str, strict: str | None, tolerant: str | None, flexible: str | None
) -> None:
    assert TASK.parse_answer(text) == strict
    assert TASK.parse_answer(text, "tolerant") == tolerant
    assert TASK.parse_answer(text, "flexible") == flexible


BALLOTS = [
    ("I am convinced.\nVOTE: yes", "yes", "yes", "yes"),
    ("### VOTE: yes\nThe motion's arithmetic holds.", None, "yes", "yes"),
    ("**VOTE: no**", None, "no", "no"),
    ("`VOTE: yes`", None, "yes", "yes"),
    ("I vote yes.", None, None, None),
    ("VOTE: maybe", None, None, None),
    ("My VOTE: yes, since it holds, and more.", None, None, "yes"),
]


@pytest.mark.parametrize(("text", "strict", "tolerant", "flexible"), BALLOTS)
def test_ballots_under_each_policy(
    text: str, strict: str | None, tolerant: str | None, flexible: str | None
) -> None:
    assert parse_ballot(text) == strict
    assert parse_ballot(text, "tolerant") == tolerant
    assert parse_ballot(text, "flexible") == flexible


DECISION_OUTPUTS = [
    ("Sound.\nDECISION: approve", "approve", "approve", "approve"),
    ("## DECISION: reject\nThe second step is wrong.", None, "reject", "reject"),
    ("**Decision: Approve**", None, "approve", "approve"),
    ("#### approve", None, None, None),  # the answer marker is no decision, in any policy
    ("DECISION: overrule", None, None, None),  # not a word this stage may decide
    ("I would say DECISION: reject, on balance.", None, None, "reject"),
]


@pytest.mark.parametrize(("text", "strict", "tolerant", "flexible"), DECISION_OUTPUTS)
def test_decisions_under_each_policy(
    text: str, strict: str | None, tolerant: str | None, flexible: str | None
) -> None:
    assert parse_decision(text, DECISIONS) == strict
    assert parse_decision(text, DECISIONS, "tolerant") == tolerant
    assert parse_decision(text, DECISIONS, "flexible") == flexible


def test_the_policy_is_the_manifests_and_is_recorded(tmp_path: Path) -> None:
    senate = (ROOT / "manifests" / "senate.yaml").read_text()
    write(tmp_path, "pyproject.toml", "")
    manifest = write(tmp_path, "senate.yaml", senate + "parsing: tolerant\n")
    out = tmp_path / "run"
    summary = asyncio.run(execute(prepare(RunRequest(manifest, limit=3, out=out, data=SAMPLE))))
    assert summary.n == 3
    header = json.loads((out / "ledger.jsonl").read_text().splitlines()[0])
    assert header["body"]["config"]["parsing"] == {"mode": "tolerant", "reasks": 0}
    wrong = write(tmp_path, "wrong.yaml", senate + "parsing: lenient\n")
    assert any("'strict', 'tolerant' or 'flexible'" in e.message for e in spec_errors(wrong))


def test_an_item_whose_every_answer_failed_to_parse_ends_no_answer_scored_flexibly(
    tmp_path: Path,
) -> None:
    """The bare baseline given only outputs without the `####` line: the item is not
    'completed' but 'no_answer', and flexible accuracy reads the raw final output."""
    from govern.models.sim.scripted import ScriptedClient

    out = tmp_path / "run"
    run = prepare(
        RunRequest(ROOT / "institutions" / "bare.yaml", task="gsm8k", limit=1, out=out,
                   data=SAMPLE)
    )  # fmt: skip
    gold = run.data.items[0].gold
    text = f"Adding it all up, the total comes to {gold}."
    run.context.router._clients["sim/medium"] = ScriptedClient({"solve": [text, text]})
    summary = asyncio.run(execute(run))
    record = json.loads((out / "results.jsonl").read_text())
    assert record["outcome"] == "no_answer" and summary.outcomes == {"no_answer": 1}
    assert record["prediction_strict"] is None and not record["correct_strict"]
    assert record["prediction_flexible"] == gold and record["correct_flexible"]


@pytest.mark.parametrize("path", sorted((ROOT / "institutions").glob("*.yaml")), ids=str)
def test_every_shipped_institutions_system_lines_read_naturally(path: Path) -> None:
    from govern.engine.prompts import compose
    from govern.spec.checks import checked_institution, load_checked

    institution = checked_institution(load_checked(path))
    for role in institution.roles:
        system = compose(institution, role.id, "Q?", "Do it.", [], "#### N")[0]["content"]
        first = system.splitlines()[0]
        assert first.startswith(f"You are the {role.title} in {institution.name}")
        assert "(none)" not in first and ")) " not in first and ") (" not in first, first
