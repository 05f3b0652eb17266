"""`govern audit --explain` tells each agent's offices and the lots that seated it, in the
story of the agent concerned: chosen, not seated, term ended, removed, drawn."""

from __future__ import annotations

import json
from pathlib import Path

from govern.governance.controller import Controller
from govern.ledger.explain import as_dicts, render, timeline
from govern.ledger.memory import MemoryLedger
from tests.conftest import TEST_KEYS, write
from tests.test_lot import SAMPLE, entries_of
from tests.test_offices import VENICE, suspending, unparsable_turn, venice

COUNCIL = [f"council#{n}" for n in range(1, 6)]


def stories_of(ledger: MemoryLedger) -> dict[str, list[str]]:
    """Each agent's story as `audit --explain` prints it, line by line."""
    lines = [json.dumps(entry).encode() for entry in ledger.entries]
    stories: dict[str, list[str]] = {}
    agent = ""
    for line in render(timeline(lines)).splitlines():
        if line.startswith("  "):
            stories[agent].append(line.strip())
        else:
            agent = line.split(",")[0]
            stories[agent] = []
    return stories


def test_each_holder_is_told_its_offices_and_the_lots_that_seated_it(project: Path) -> None:
    ledger = MemoryLedger()
    overlay = suspending({"kind": "replacement"}, "mute")
    controller = Controller(venice(project, term=2), overlay, ledger)
    [doge] = controller.draw_lot("i1", "elect", 1, COUNCIL, 1)
    controller.fill_office("i1", "doge", [doge], "elect")
    other = next(seat for seat in COUNCIL if seat != doge)
    controller.fill_office("i2", "doge", [other], "elect")  # too late: not seated
    unparsable_turn(controller, doge, "i2")
    unparsable_turn(controller, doge, "i2")  # replaced, and so removed from office
    successor = f"{doge}~2"
    assert controller.draw_lot("i3", "elect", 1, [doge], 1) == [doge]  # the seat: its successor
    controller.fill_office("i3", "doge", [doge], "elect")
    controller.end_item("i3", "completed")
    controller.end_item("i4", "completed")  # a term of two items
    seq = {
        (e["kind"], e["body"].get("event"), e["body"].get("item")): e["seq"] for e in ledger.entries
    }
    stories = stories_of(ledger)
    assert [line for line in stories[doge] if "office" in line or "lot" in line] == [
        f"#{seq['office', 'chosen', 'i1']} i1 took office doge (chosen by elect, term 2)",
        f"#{seq['office', 'removed', 'i2']} i2 left office doge: {doge} was removed under "
        "format:active->mute",
        f"drawn by lot in elect 1 time, first at #{seq['lot', None, 'i1']}",
    ]
    assert stories[other] == [
        "0 turns (0 unparsable) in no stage; 0 transitions applied, 0 blocked",
        f"#{seq['office', 'not_applied', 'i2']} i2 chosen for office doge by elect, not seated: "
        "it was filled first",
    ]
    held = [line for line in stories[successor] if "office" in line or "lot" in line]
    assert held == [
        f"#{seq['office', 'chosen', 'i3']} i3 took office doge (chosen by elect, term 2)",
        f"#{seq['office', 'term_ended', 'i4']} i4 left office doge: its term ended after 2 items",
        f"drawn by lot in elect 1 time, first at #{seq['lot', None, 'i3']}",
    ]
    lines = [json.dumps(entry).encode() for entry in ledger.entries]
    drawn = {story["agent"]: story["drawn"] for story in as_dicts(timeline(lines))}
    assert drawn[doge] == drawn[successor] == {"elect": 1} and drawn[other] == {}


def test_audit_explain_tells_the_simulated_republic_who_was_drawn_and_held_office(
    cli, project: Path
) -> None:
    spec = write(project, "venice.yaml", VENICE.replace("TERM", "2"))
    args = ["--task", "gsm8k", "--data", str(SAMPLE), "--limit", "6", "--seed", "3"]
    args += ["--concurrency", "1"]  # one item at a time: a lot every other item
    run = project / "run"
    assert (
        cli("run", str(spec), *args, "--out", str(run), home=project, **TEST_KEYS).returncode == 0
    )
    entries = entries_of(run / "ledger.jsonl")
    lots = [e for e in entries if e["kind"] == "lot"]
    chosen = [e for e in entries if e["kind"] == "office" and e["body"]["event"] == "chosen"]
    assert len(lots) == len(chosen) == 3  # a term of two items
    result = cli("audit", str(run), "--explain", home=project, **TEST_KEYS)
    assert result.returncode == 0, result.stdout
    printed = result.stdout.split("\n", 1)[1]  # past the verdict
    for lot, office in zip(lots, chosen, strict=True):
        [seat] = lot["body"]["drawn"]
        story = printed.split(f"\n{seat}\n", 1)[1].split("\ncouncil#", 1)[0]
        assert f"#{office['seq']} {office['body']['item']} took office doge" in story
        assert f"drawn by lot in elect {sum(seat in e['body']['drawn'] for e in lots)} " in story


def test_a_refused_choice_is_told_in_the_chosen_agents_story() -> None:
    from govern.ledger.explain import _office_event

    body = {"office": "doge", "event": "refused", "by": "elect", "reason": "council#3 is suspended"}
    assert _office_event(body) == "chosen for office doge by elect, refused: council#3 is suspended"
