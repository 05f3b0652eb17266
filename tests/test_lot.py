"""Drawing by lot: the draw an auditor can redo by hand, the Controller that draws and
writes it, the stage that seats the drawn, and `govern audit` redoing every draw from the
ledger alone (and refusing a ledger whose draw was rewritten, even with the run's keys)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govern.engine.compile import compile_institution
from govern.engine.context import RunContext
from govern.engine.state import initial_state
from govern.governance.controller import Controller
from govern.governance.lot import METHOD, check_lots, draw
from govern.ledger.format import parse
from govern.ledger.keys import keyring_from_secrets
from govern.ledger.memory import MemoryLedger
from govern.ledger.writer import LedgerWriter
from govern.models.router import ModelRouter
from govern.models.sim.scripted import ScriptedClient
from govern.spec.checks import checked_institution, load_checked
from govern.spec.models import Governance, Institution
from govern.tasks.gsm8k import GSM8K
from tests.conftest import ROOT, TEST_KEY, TEST_KEYS, TEST_SEAL_KEY, write

COUNCIL = [f"council#{n}" for n in range(1, 10)]
SAMPLE = ROOT / "tasks" / "gsm8k_sample.jsonl"
SORTITION = """\
id: sortition
name: Jury by lot
era: test
pattern: consensus
history: A proposer answers; a jury of three drawn by lot from the council votes on it.
roles:
  - id: proposer
    title: Proposer
    instructions: Solve the problem step by step and propose one final answer.
  - id: council
    title: Councillor
    seats: 9
    instructions: Vote for the answer only if you are convinced it is right.
entry: motion
stages:
  - id: motion
    kind: propose
    role: proposer
    purpose: Propose a worked answer.
    next: {done: sortition, unparsable: rejected}
  - id: sortition
    kind: lot
    pool: [council]
    draw: 3
    purpose: Draw a jury of three councillors.
    next: {done: jury}
  - id: jury
    kind: vote
    voters: {chosen_by: sortition}
    rule: majority
    purpose: The jury votes on the answer.
    next: {pass: accepted, fail: rejected, unparsable: rejected}
  - id: accepted
    kind: terminal
  - id: rejected
    kind: terminal
    outcome: rejected
policy:
  max_steps: 10
"""


def key_by_hand(seed: int, item: str, stage: str, visit: int, seat: str) -> str:
    """sha256-rank/1's key, written out as the docs state it (plain identifiers only)."""
    text = f'[{seed},"{item}","{stage}",{visit},"{seat}"]'
    return hashlib.sha256(b"govern lot\x00" + text.encode("utf-8")).hexdigest()


def draw_by_hand(seed: int, item: str, stage: str, visit: int, pool: list[str], k: int) -> list:
    return sorted(pool, key=lambda seat: key_by_hand(seed, item, stage, visit, seat))[:k]


# --- the draw ---------------------------------------------------------------------------------


def test_the_documented_example_hashes_as_sha256sum_does() -> None:
    # printf 'govern lot\0%s' '[7,"item-3","sortition",1,"council#4"]' | sha256sum
    assert key_by_hand(7, "item-3", "sortition", 1, "council#4") == (
        "569e235fac93633e7624a8eb8cf66ee47068c1a1b882d7427c388eb2823c9797"
    )


def test_a_draw_is_the_seats_with_the_smallest_keys_in_key_order() -> None:
    # the nine keys, from sha256sum in a shell, begin: #7 3dcc, #9 46bf, #4 569e, #2 72b1 ...
    assert draw(7, "item-3", "sortition", 1, COUNCIL, 3) == ["council#7", "council#9", "council#4"]
    assert draw(7, "item-3", "sortition", 1, COUNCIL, 4)[-1] == "council#2"
    for visit in (1, 2, 3):
        expected = draw_by_hand(41, "sample/0007", "jury_lot", visit, COUNCIL, 5)
        assert draw(41, "sample/0007", "jury_lot", visit, COUNCIL, 5) == expected


def test_the_same_inputs_give_the_same_draw_and_others_another() -> None:
    first = draw(3, "a", "lot", 1, COUNCIL, 3)
    assert draw(3, "a", "lot", 1, list(COUNCIL), 3) == first
    for vary in (
        lambda n: (3, "a", "lot", n),  # visits
        lambda n: (3, f"item-{n}", "lot", 1),  # items
        lambda n: (n, "a", "lot", 1),  # seeds
        lambda n: (3, "a", f"lot{n}", 1),  # stages
    ):
        draws = {tuple(draw(*vary(n), COUNCIL, 3)) for n in range(1, 21)}
        assert len(draws) > 10  # 84 possible juries: twenty draws are rarely alike


def test_a_pool_smaller_than_the_draw_is_drawn_whole_in_key_order() -> None:
    pool = ["council#2", "council#5"]
    assert draw(7, "item-3", "sortition", 1, pool, 3) == ["council#2", "council#5"]
    assert draw(7, "item-3", "sortition", 1, [], 3) == []


SEATS = st.lists(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8),
    min_size=1,
    max_size=12,
)


@given(
    seed=st.integers(0, 2**63 - 1),
    item=st.text(max_size=12),
    visit=st.integers(1, 50),
    pool=SEATS,
    k=st.integers(1, 14),
    order=st.randoms(use_true_random=False),
)
def test_a_draw_is_a_k_subset_of_the_pool_whatever_its_order(
    seed: int, item: str, visit: int, pool: list[str], k: int, order: Any
) -> None:
    drawn = draw(seed, item, "lot", visit, pool, k)
    assert len(drawn) == len(set(drawn)) == min(k, len(set(pool)))
    assert set(drawn) <= set(pool)
    shuffled = list(pool)
    order.shuffle(shuffled)
    assert draw(seed, item, "lot", visit, shuffled + pool[:1], k) == drawn
    assert draw(seed, item, "lot", visit, pool, k + 1)[:k] == drawn  # a bigger lot extends it


@given(seed=st.integers(0, 10**6), item=st.from_regex(r"[a-z0-9/_-]{1,12}", fullmatch=True))
def test_the_module_agrees_with_the_draw_done_by_hand(seed: int, item: str) -> None:
    assert draw(seed, item, "sortition", 2, COUNCIL, 4) == draw_by_hand(
        seed, item, "sortition", 2, COUNCIL, 4
    )


# --- the Controller ---------------------------------------------------------------------------


def sortition(tmp_path: Path) -> Institution:
    return checked_institution(load_checked(write(tmp_path, "sortition.yaml", SORTITION)))


BARRING = Governance(states=["active", "suspended"], initial="active", acting=["active"])


def controller_with(institution: Institution, barred: tuple[str, ...] = (), **holders: str):
    """A controller (seed 9) whose ``barred`` agents are suspended and whose seats
    ``holders`` (seat with '_' for '#') are held by the replacements named."""
    controller = Controller(institution, BARRING, MemoryLedger(), seed=9)
    snapshot = controller.snapshot()
    for seat, agent in holders.items():
        snapshot["holders"][seat.replace("_", "#")] = agent
        snapshot["agents"][agent] = {**snapshot["agents"][seat.replace("_", "#")], "agent": agent}
    for agent in barred:
        snapshot["agents"][agent]["state"] = "suspended"
    controller.restore(snapshot)
    return controller


def test_the_controller_draws_from_those_who_may_act_and_writes_the_lot(tmp_path: Path) -> None:
    controller = controller_with(
        sortition(tmp_path), barred=("council#2", "council#8~2"), council_8="council#8~2"
    )
    drawn = controller.draw_lot("i1", "sortition", 2, COUNCIL, 3)
    pool = [s for s in COUNCIL if s not in ("council#2", "council#8")]
    assert drawn == draw_by_hand(9, "i1", "sortition", 2, pool, 3)
    blocks = controller.ledger.of_kind("transition")
    assert [b["body"]["actor"] for b in blocks] == ["council#2", "council#8~2"]
    assert all(b["body"]["status"] == "blocked" for b in blocks)
    [lot] = controller.ledger.of_kind("lot")
    assert lot["actor"] == "controller"
    assert lot["body"] == {
        "item": "i1",
        "stage": "sortition",
        "visit": 2,
        "method": METHOD,
        "seed": 9,
        "pool": pool,
        "draw": 3,
        "drawn": drawn,
    }


def test_a_replacement_is_drawn_as_its_seat(tmp_path: Path) -> None:
    controller = controller_with(sortition(tmp_path), council_4="council#4~2")
    assert controller.draw_lot("i1", "sortition", 1, ["council#4"], 1) == ["council#4"]


def test_nobody_to_draw_writes_no_lot(tmp_path: Path) -> None:
    controller = controller_with(sortition(tmp_path), barred=("council#1", "council#2"))
    assert controller.draw_lot("i1", "sortition", 1, ["council#1", "council#2"], 1) == []
    assert controller.ledger.of_kind("lot") == []
    assert len(controller.ledger.of_kind("transition")) == 2


# --- the stage --------------------------------------------------------------------------------


def run_one(institution: Institution, controller: Controller, script: dict) -> dict[str, Any]:
    client = ScriptedClient(script)
    context = RunContext(
        institution,
        GSM8K(),
        ModelRouter(clients={"test/model": client}),
        {r.id: "test/model" for r in institution.roles},
        seed=9,
        golds={"item": "1"},
        controller=controller,
    )
    compiled = compile_institution(institution)
    state = asyncio.run(
        compiled.graph.ainvoke(
            initial_state("item", "What is 1 + 0?"),
            {"recursion_limit": compiled.recursion_limit},
            context=context,
        )
    )
    state["asked"] = [(r.oracle.stage, r.oracle.agent) for r in client.requests]
    return state


def test_the_jury_drawn_is_the_body_that_votes_and_no_model_draws(tmp_path: Path) -> None:
    institution = sortition(tmp_path)
    controller = controller_with(institution, barred=("council#7",))
    drawn = draw_by_hand(9, "item", "sortition", 1, [s for s in COUNCIL if s != "council#7"], 3)
    no_to_one = {drawn[0]: "no", "*": "yes"}
    state = run_one(institution, controller, {"jury": [no_to_one]})
    assert state["chosen"] == {"sortition": drawn}
    assert state["path"] == ["motion", "sortition", "jury", "accepted"]
    assert sorted(b["seat"] for b in state["ballots"]) == sorted(drawn)
    assert [stage for stage, _ in state["asked"]] == ["motion", "jury", "jury", "jury"]


def test_a_lot_with_nobody_to_draw_stops_the_item(tmp_path: Path) -> None:
    institution = sortition(tmp_path)
    state = run_one(institution, controller_with(institution, barred=tuple(COUNCIL)), {})
    assert state["path"] == ["motion", "sortition"]
    assert state["outcome"] == "blocked" and state["ballots"] == []
    assert state["chosen"] == {}


# --- the audit, from the ledger alone ---------------------------------------------------------


def ledger_lines(entries: list[dict[str, Any]]) -> tuple[list[bytes], list[bytes]]:
    lines = [json.dumps({"seq": n, **e}).encode() for n, e in enumerate(entries)]
    return lines, [e["kind"].encode() for e in entries]


def lot_entry(**changes: Any) -> dict[str, Any]:
    body = {
        "item": "i1",
        "stage": "sortition",
        "visit": 1,
        "method": METHOD,
        "seed": 5,
        "pool": COUNCIL,
        "draw": 3,
        "drawn": draw_by_hand(5, "i1", "sortition", 1, COUNCIL, 3),
    }
    return {"kind": "lot", "actor": "controller", "body": {**body, **changes}}


HEADER = {"kind": "header", "actor": "govern", "body": {"config": {"seed": 5}}}


def problems_of(*entries: dict[str, Any], header: dict[str, Any] = HEADER) -> list[str]:
    lots, problems = check_lots(*ledger_lines([header, *entries]))
    assert lots == len(entries)
    return problems


def test_a_draw_that_recomputes_passes() -> None:
    second_visit = draw_by_hand(5, "i1", "sortition", 2, COUNCIL, 3)
    assert problems_of(lot_entry(), lot_entry(visit=2, drawn=second_visit)) == []
    assert check_lots(*ledger_lines([HEADER])) == (0, [])


other_seed = draw_by_hand(6, "i1", "sortition", 1, COUNCIL, 3)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"drawn": list(reversed(draw_by_hand(5, "i1", "sortition", 1, COUNCIL, 3)))}, "records"),
        ({"drawn": COUNCIL[:3]}, "but the run's seed and the pool draw"),
        ({"seed": 6, "drawn": other_seed}, "names seed 6, but the run's seed is 5"),
        ({"method": "random.shuffle"}, "names method 'random.shuffle'"),
        ({"visit": True}, "visit is missing or malformed"),
        ({"pool": "council#1"}, "pool is missing or malformed"),
        ({"drawn": None, "draw": 0}, "draw, drawn is missing or malformed"),
    ],
)
def test_a_draw_that_does_not_recompute_fails_naming_its_entry(
    changes: dict[str, Any], reason: str
) -> None:
    [problem] = problems_of(lot_entry(), lot_entry(**changes))
    assert problem.startswith("entry 2: ") and reason in problem


def test_a_lot_without_the_runs_seed_in_the_header_fails() -> None:
    no_seed = {"kind": "header", "actor": "govern", "body": {"config": {}}}
    [problem] = problems_of(lot_entry(), header=no_seed)
    assert "header records no run seed" in problem


def keyed_run(folder: Path, spec: Path) -> Path:
    """Six items of ``spec`` on the simulator through the command line, with the test keys
    and a ledger; the run's folder."""
    from govern.cli import main

    with pytest.MonkeyPatch.context() as patch:
        for name, value in TEST_KEYS.items():
            patch.setenv(name, value)
        patch.setenv("XDG_CONFIG_HOME", str(folder / "config"))
        patch.setenv("GOVERN_CACHE", "off")
        args = ["--task", "gsm8k", "--data", str(SAMPLE), "--limit", "6", "--seed", "11"]
        status = main(
            ["run", str(spec), *args, "--model", "sim/medium", "--out", str(folder / "run")]
        )
    assert status == 0
    return folder / "run"


@pytest.fixture(scope="module")
def lot_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six items through the jury by lot on the simulator, with a ledger."""
    folder = tmp_path_factory.mktemp("lot_run")
    return keyed_run(folder, write(folder, "sortition.yaml", SORTITION))


def entries_of(ledger: Path) -> list[dict[str, Any]]:
    return [parse(line) for line in ledger.read_bytes().splitlines()]


def test_every_lot_in_the_ledger_recomputes_and_seats_the_jury(lot_run: Path) -> None:
    entries = entries_of(lot_run / "ledger.jsonl")
    seed = entries[0]["body"]["config"]["seed"]
    assert seed == 11
    lots = [e["body"] for e in entries if e["kind"] == "lot"]
    assert len(lots) == 6
    votes: dict[str, list[str]] = {}
    for entry in entries:
        if entry["kind"] == "turn" and entry["body"]["stage"] == "jury":
            votes.setdefault(entry["body"]["item"], []).append(entry["actor"])
    for lot in lots:
        assert lot["pool"] == COUNCIL and lot["draw"] == 3
        recomputed = draw_by_hand(seed, lot["item"], lot["stage"], lot["visit"], COUNCIL, 3)
        assert lot["drawn"] == recomputed
        assert sorted(votes[lot["item"]]) == sorted(recomputed)
    drawn = {lot["item"]: lot["drawn"] for lot in lots}
    for line in (lot_run / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        ballots = [t["seat"] for t in record["turns"] if t["stage"] == "jury"]
        assert sorted(ballots) == sorted(drawn[record["id"]])


def test_audit_redoes_the_draws(cli, lot_run: Path, tmp_path: Path) -> None:
    result = cli("audit", str(lot_run), home=tmp_path, **TEST_KEYS)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("intact: ")
    assert "lots: 6 draws redone from the run's seed, each as recorded" in result.stdout


def forge(run: Path, folder: Path, change: dict[str, Any], kind: str = "lot") -> tuple[Path, int]:
    """The run rewritten by a holder of its keys, the body of the first entry of ``kind``
    changed: every MAC, the chain, the seals and ledger.head are genuine. Returns the folder
    and the changed entry's seq."""
    forged = Path(shutil.copytree(run, folder / "forged"))
    (forged / "ledger.jsonl").unlink()
    (forged / "ledger.head").unlink()
    entries = entries_of(run / "ledger.jsonl")
    assert [e["kind"] for e in entries].count("seal") == 1  # only the closing one, at the end
    ring = keyring_from_secrets(TEST_KEY, TEST_SEAL_KEY, "test")
    header = entries[0]
    writer = LedgerWriter.create(forged / "ledger.jsonl", ring, header["run"], header["body"])
    target = next(e["seq"] for e in entries if e["kind"] == kind)
    for entry in entries[1:-1]:
        body = {**entry["body"], **change} if entry["seq"] == target else entry["body"]
        assert writer.append(entry["kind"], entry["actor"], body) == entry["seq"]
    writer.close("complete")
    return forged, target


def test_a_rewritten_draw_fails_the_audit_naming_the_lot(
    cli, lot_run: Path, tmp_path: Path
) -> None:
    lot = next(e["body"] for e in entries_of(lot_run / "ledger.jsonl") if e["kind"] == "lot")
    others = [s for s in COUNCIL if s not in lot["drawn"]][:3]
    forged, seq = forge(lot_run, tmp_path, {"drawn": others})
    result = cli("audit", str(forged), home=tmp_path, **TEST_KEYS)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "NOT INTACT: a draw by lot does not follow from the run's seed"
    assert lines[1].startswith("intact: ")  # every MAC and seal is genuine: only the lot lies
    assert f"lots: entry {seq}: the lot in sortition for {lot['item']} (visit 1) " in result.stdout
    assert f"records {', '.join(others)} drawn" in result.stdout


def test_a_draw_redone_with_another_seed_fails_the_audit(
    cli, lot_run: Path, tmp_path: Path
) -> None:
    lot = next(e["body"] for e in entries_of(lot_run / "ledger.jsonl") if e["kind"] == "lot")
    drawn = draw_by_hand(12, lot["item"], "sortition", 1, COUNCIL, 3)
    forged, seq = forge(lot_run, tmp_path, {"seed": 12, "drawn": drawn})
    result = cli("audit", str(forged), "--json", home=tmp_path, **TEST_KEYS)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ledger"]["intact"] is True
    assert report["lots"] == {
        "checked": 6,
        "problems": [f"entry {seq}: the lot names seed 12, but the run's seed is 11"],
    }
