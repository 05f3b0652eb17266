"""`govern audit` redoes every oversight draw from the ledger alone, with the header's seed
at the rate each draw records, counts how many transitions were examined, and refuses a
ledger whose draw was rewritten, even by a holder of the run's keys."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govern.governance.controller import Controller
from govern.governance.oversight import METHOD, check_oversight, examined
from govern.ledger.memory import MemoryLedger
from tests.conftest import TEST_KEYS, write
from tests.test_lot import HEADER, entries_of, forge, keyed_run, ledger_lines
from tests.test_oversight import SPEC, institution

# --- from the ledger alone ----------------------------------------------------------------------


def draw_entry(
    seed: int = 5, item: str = "i1", visit: int = 1, overseer: int = 0, rate: str = "1/2"
) -> dict[str, Any]:
    """An oversight entry as the Controller writes it for the run seed ``seed``."""
    sampled = examined(seed, item, "propose", visit, overseer, Fraction(rate))
    body = {"item": item, "stage": "propose", "visit": visit, "overseer": overseer}
    body |= {"role": "censor", "method": METHOD, "rate": rate, "sampled": sampled}
    return {"kind": "oversight", "actor": "controller", "body": body}


def broken(**changes: Any) -> dict[str, Any]:
    entry = draw_entry()
    entry["body"] |= changes
    return entry


def coverage_of(*entries: dict[str, Any], header: dict[str, Any] = HEADER):
    coverage = check_oversight(*ledger_lines([header, *entries]))
    assert coverage.draws == len(entries)
    return coverage


def test_the_controllers_draws_recompute_and_are_counted(tmp_path: Path) -> None:
    controller = Controller(institution(tmp_path, "1/2"), ledger=MemoryLedger(), seed=5)
    for n in range(40):
        controller.oversee(f"item-{n}", "propose", 1, {})
    header = {"kind": "header", "actor": "govern", "body": {"config": {"seed": 5}}}
    lines, kinds = ledger_lines([header, *controller.ledger.entries])
    coverage = check_oversight(lines, kinds)
    sampled = [e["body"]["sampled"] for e in controller.ledger.entries]
    assert (coverage.draws, coverage.examined, coverage.problems) == (40, sum(sampled), [])
    assert 0 < coverage.examined < 40
    assert check_oversight(*ledger_lines([HEADER])).draws == 0


@given(
    seed=st.integers(0, 2**63 - 1),
    item=st.text(max_size=12),
    visit=st.integers(1, 50),
    index=st.integers(0, 5),
    rate=st.fractions(0, 1).filter(bool),
)
def test_a_draw_recomputes_and_its_flip_fails_naming_the_entry(
    seed: int, item: str, visit: int, index: int, rate: Fraction
) -> None:
    header = {"kind": "header", "actor": "govern", "body": {"config": {"seed": seed}}}
    entry = draw_entry(seed, item=item, visit=visit, overseer=index, rate=str(rate))
    assert coverage_of(entry, header=header).problems == []
    flipped = draw_entry(seed, item=item, visit=visit, overseer=index, rate=str(rate))
    flipped["body"]["sampled"] = not flipped["body"]["sampled"]
    [problem] = coverage_of(entry, flipped, header=header).problems
    assert problem.startswith(f"entry 2: the oversight draw of overseer {index} in propose for ")
    assert f"but the run's seed at rate {rate} draws" in problem


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"method": "random.random"}, "names method 'random.random', which is not"),
        ({"method": None}, "names method None"),
        ({"rate": "0.5"}, "rate is missing or malformed"),  # not as the Controller writes it
        ({"rate": "2/4"}, "rate is missing or malformed"),
        ({"rate": "0"}, "rate is missing or malformed"),
        ({"rate": "3/2"}, "rate is missing or malformed"),
        ({"rate": "1/0"}, "rate is missing or malformed"),
        ({"rate": 0.5}, "rate is missing or malformed"),
        ({"sampled": "yes"}, "sampled is missing or malformed"),
        ({"overseer": -1, "visit": 0}, "visit, overseer is missing or malformed"),
        ({"overseer": True}, "overseer is missing or malformed"),
    ],
)
def test_a_draw_that_cannot_be_redone_fails_naming_its_entry(
    changes: dict[str, Any], reason: str
) -> None:
    [problem] = coverage_of(draw_entry(), broken(**changes)).problems
    assert problem.startswith("entry 2: ") and reason in problem


def test_an_entry_without_a_body_or_a_header_without_a_seed_fails() -> None:
    no_body = {"kind": "oversight", "actor": "controller", "body": None}
    assert coverage_of(no_body).problems == ["entry 1: the oversight draw entry has no body"]
    no_seed = {"kind": "header", "actor": "govern", "body": {"config": {}}}
    [problem] = coverage_of(draw_entry(), header=no_seed).problems
    assert "header records no run seed" in problem


def test_a_draw_is_redone_at_the_rate_it_records() -> None:
    """A transition examined at 1/2 but not at 1/8, recorded as examined at 1/8 (as if the
    Controller had drawn at another rate than it wrote), fails; recorded at 1/2 it passes.
    That the rate is the institution's is not the ledger's to prove."""
    item = next(
        f"i{n}"
        for n in range(200)
        if draw_entry(item=f"i{n}")["body"]["sampled"]
        and not draw_entry(item=f"i{n}", rate="1/8")["body"]["sampled"]
    )
    assert coverage_of(draw_entry(item=item)).problems == []
    lying = draw_entry(item=item, rate="1/8")
    lying["body"]["sampled"] = True
    [problem] = coverage_of(lying).problems
    assert "records examined, but the run's seed at rate 1/8 draws not examined" in problem


# --- a run on the simulator, audited with the command line --------------------------------------


@pytest.fixture(scope="module")
def overseen_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six items through the pipeline under a censor who examines half its transitions."""
    folder = tmp_path_factory.mktemp("overseen_run")
    write(folder, "pyproject.toml", "")
    return keyed_run(folder, write(folder, "overseen.yaml", SPEC.format(rate="1/2")))


def draws_of(run: Path) -> list[dict[str, Any]]:
    return [e for e in entries_of(run / "ledger.jsonl") if e["kind"] == "oversight"]


def test_the_audit_redoes_every_oversight_draw_and_counts_the_examined(
    cli, overseen_run: Path, tmp_path: Path
) -> None:
    draws = draws_of(overseen_run)
    sampled = sum(d["body"]["sampled"] for d in draws)
    assert {d["body"]["rate"] for d in draws} == {"1/2"} and 0 < sampled < len(draws)
    result = cli("audit", str(overseen_run), home=tmp_path, **TEST_KEYS)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("intact: ")
    assert (
        f"oversight: {len(draws)} draws redone from the run's seed, each as recorded; "
        f"{sampled} examined a transition, {len(draws) - sampled} did not"
    ) in result.stdout.splitlines()
    report = json.loads(
        cli("audit", str(overseen_run), "--json", home=tmp_path, **TEST_KEYS).stdout
    )
    assert report["oversight"] == {"checked": len(draws), "examined": sampled, "problems": []}
    assert "lots" not in report  # no lot was drawn: nothing to report


def test_a_flipped_draw_fails_the_audit_naming_the_entry(
    cli, overseen_run: Path, tmp_path: Path
) -> None:
    first = draws_of(overseen_run)[0]["body"]
    forged, seq = forge(overseen_run, tmp_path, {"sampled": not first["sampled"]}, "oversight")
    result = cli("audit", str(forged), home=tmp_path, **TEST_KEYS)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "NOT INTACT: an oversight draw does not follow from the run's seed"
    assert lines[1].startswith("intact: ")  # every MAC and seal is genuine: only the draw lies
    flipped, was = (
        ("not examined", "examined") if first["sampled"] else ("examined", "not examined")
    )
    assert (
        f"oversight: entry {seq}: the oversight draw of overseer 0 in {first['stage']} for "
        f"{first['item']} (visit {first['visit']}) records {flipped}, but the run's seed at "
        f"rate 1/2 draws {was}"
    ) in lines


def test_an_unknown_method_fails_the_audit(cli, overseen_run: Path, tmp_path: Path) -> None:
    forged, seq = forge(overseen_run, tmp_path, {"method": "coin-toss"}, "oversight")
    result = cli("audit", str(forged), "--json", home=tmp_path, **TEST_KEYS)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ledger"]["intact"] is True
    assert report["oversight"]["problems"] == [
        f"entry {seq}: the oversight draw names method 'coin-toss', which is not {METHOD}"
    ]
