"""Offices: held across items for a term, vacated at its end or by a sanction that bars a
holder, acted by their holders under the office's title on the holders' own models."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from govern.engine.compile import compile_institution
from govern.engine.context import RunContext
from govern.engine.routing import RETRY, STOP
from govern.engine.state import initial_state
from govern.governance.controller import Controller
from govern.ledger.memory import MemoryLedger
from govern.models.router import ModelRouter
from govern.models.sim.scripted import ScriptedClient
from govern.spec.checks import checked_institution, load_checked
from govern.spec.models import Governance, Institution, SamplingPolicy
from govern.tasks.gsm8k import GSM8K
from tests.conftest import write

COUNCIL_MODELS = ["sim/strong", "sim/weak", "sim/medium", "sim/strong", "sim/weak"]
VENICE = f"""\
id: venice
name: Republic of Venice
era: now
pattern: pipeline
history: The Great Council drew the Doge by lot; he held office for his term.
roles:
  - id: council
    title: Councillor
    instructions: Sit in the Great Council.
    seats: 5
    models: [{", ".join(COUNCIL_MODELS)}]
  - id: doge
    title: Doge of Venice
    instructions: Govern the Republic; answer what is put to you.
    office: {{term: TERM}}
entry: seat
stages:
  - id: seat
    kind: office
    office: doge
    purpose: Is there a Doge in office?
    next: {{held: govern, vacant: elect}}
  - id: elect
    kind: lot
    pool: [council]
    draw: 1
    fills: doge
    purpose: The Great Council draws the Doge by lot.
    next: {{done: govern}}
  - id: govern
    kind: propose
    role: doge
    purpose: Answer the question put to the Republic.
    next: {{done: end, unparsable: end}}
  - id: end
    kind: terminal
"""


def venice(project: Path, term: int | str = 2) -> Institution:
    path = write(project, "venice.yaml", VENICE.replace("TERM", str(term)))
    return checked_institution(load_checked(path))


def suspending(sanction: dict[str, Any], to: str = "suspended") -> Governance:
    """An overlay whose one rule moves an agent with two unparsable outputs in a row."""
    rule = {
        "name": "format",
        "from": "active",
        "to": to,
        "evidence": {"predicate": "unparsable_streak", "count": 2},
        "sanction": sanction,
    }
    return Governance.model_validate(
        {
            "states": ["active", "suspended", "mute"],
            "initial": "active",
            "acting": ["active", "mute"],
            "rules": [rule],
        }
    )


def office_events(ledger: MemoryLedger) -> list[dict[str, Any]]:
    return [e["body"] for e in ledger.of_kind("office")]


def unparsable_turn(controller: Controller, agent: str, item: str = "i1") -> None:
    controller.observe_turn(item, "govern", agent, 1, "solve", "m", [], "?", False, (1, 1))


# -- the Controller's office book ---------------------------------------------------------


def test_a_vacant_office_is_filled_by_the_agents_in_the_chosen_seats(project: Path) -> None:
    ledger = MemoryLedger()
    controller = Controller(venice(project), ledger=ledger)
    assert not controller.office_held("doge")
    assert controller.fill_office("i1", "doge", ["council#3"], "elect") is True
    assert controller.office_held("doge")
    assert controller.actor_for("i1", "govern", "doge") == "council#3"
    assert office_events(ledger) == [
        {
            "event": "chosen",
            "office": "doge",
            "holders": ["council#3"],
            "item": "i1",
            "seats": ["council#3"],
            "by": "elect",
            "term": 2,
        }
    ]


def test_a_second_filling_while_held_is_recorded_as_not_applied(project: Path) -> None:
    ledger = MemoryLedger()
    controller = Controller(venice(project), ledger=ledger)
    controller.fill_office("i1", "doge", ["council#3"], "elect")
    assert controller.fill_office("i2", "doge", ["council#5"], "elect") is False
    assert controller.actor_for("i2", "govern", "doge") == "council#3"
    second = office_events(ledger)[1]
    assert second["event"] == "not_applied" and second["holders"] == ["council#5"]
    assert second["item"] == "i2"


def test_the_office_holds_for_its_term_in_finished_items_then_falls_vacant(
    project: Path,
) -> None:
    ledger = MemoryLedger()
    controller = Controller(venice(project, term=2), ledger=ledger)
    controller.fill_office("i1", "doge", ["council#3"], "elect")
    controller.end_item("i1", "completed")
    assert controller.office_held("doge")
    controller.end_item("i2", "completed")
    assert not controller.office_held("doge")
    ended = office_events(ledger)[-1]
    assert ended == {
        "event": "term_ended",
        "office": "doge",
        "holders": ["council#3"],
        "item": "i2",
        "term": 2,
        "served": 2,
    }


def test_a_term_for_the_run_never_ends(project: Path) -> None:
    ledger = MemoryLedger()
    controller = Controller(venice(project, term="run"), ledger=ledger)
    controller.fill_office("i0", "doge", ["council#1"], "elect")
    for n in range(50):
        controller.end_item(f"i{n}", "completed")
    assert controller.office_held("doge")
    assert [e["event"] for e in office_events(ledger)] == ["chosen"]


def test_a_vacant_office_has_nobody_to_act_and_says_so(project: Path) -> None:
    ledger = MemoryLedger()
    controller = Controller(venice(project), ledger=ledger)
    assert controller.actor_for("i1", "govern", "doge") is None
    (blocked,) = [e["body"] for e in ledger.of_kind("transition")]
    assert blocked["status"] == "blocked" and blocked["rule"] == "office:vacant"
    assert "the office 'doge' is vacant" in blocked["reason"]


def test_a_suspended_holder_is_removed_from_office_at_once(project: Path) -> None:
    ledger = MemoryLedger()
    overlay = suspending({"kind": "suspension", "items": 2})
    controller = Controller(venice(project, term="run"), overlay, ledger)
    controller.fill_office("i1", "doge", ["council#3"], "elect")
    unparsable_turn(controller, "council#3")
    assert controller.office_held("doge")
    unparsable_turn(controller, "council#3")
    assert not controller.office_held("doge")
    removed = office_events(ledger)[-1]
    assert removed == {
        "event": "removed",
        "office": "doge",
        "holders": ["council#3"],
        "item": "i1",
        "agent": "council#3",
        "rule": "format:active->suspended",
    }
    assert controller.actor_for("i1", "govern", "doge") is None


def test_a_replaced_holder_is_removed_and_the_successor_does_not_inherit(project: Path) -> None:
    ledger = MemoryLedger()
    controller = Controller(venice(project), suspending({"kind": "replacement"}, "mute"), ledger)
    controller.fill_office("i1", "doge", ["council#3"], "elect")
    unparsable_turn(controller, "council#3")
    unparsable_turn(controller, "council#3")
    assert not controller.office_held("doge")
    assert office_events(ledger)[-1]["event"] == "removed"


def test_losing_the_vote_alone_does_not_remove_a_holder(project: Path) -> None:
    ledger = MemoryLedger()
    controller = Controller(venice(project), suspending({"kind": "loss_of_vote"}, "mute"), ledger)
    controller.fill_office("i1", "doge", ["council#3"], "elect")
    unparsable_turn(controller, "council#3")
    unparsable_turn(controller, "council#3")
    assert controller.agents["council#3"].state == "mute"
    assert controller.office_held("doge")
    assert [e["event"] for e in office_events(ledger)] == ["chosen"]


def test_only_a_holder_may_act_as_the_office(project: Path) -> None:
    controller = Controller(venice(project))
    controller.fill_office("i1", "doge", ["council#3"], "elect")
    applied = controller.transition("i1", "govern", "done", "council#3", {"govern": 1})
    assert applied.target == "end"
    blocked = controller.transition("i1", "govern", "done", "council#4", {"govern": 1})
    assert (blocked.via, blocked.key) == ("blocked", RETRY)  # the holder may stand in
    controller.end_item("i1", "completed")
    controller.end_item("i2", "completed")  # the term is over: nobody left to stand in
    blocked = controller.transition("i3", "govern", "done", "council#3", {"govern": 1})
    assert (blocked.via, blocked.key) == ("blocked", STOP)


def test_the_office_book_survives_a_snapshot_and_the_item_end_carries_it(
    project: Path,
) -> None:
    ledger = MemoryLedger()
    controller = Controller(venice(project, term=2), ledger=ledger)  # no overlay
    controller.fill_office("i1", "doge", ["council#4"], "elect")
    controller.end_item("i1", "completed")
    (end,) = [e["body"] for e in ledger.of_kind("item") if e["body"]["event"] == "end"]
    snapshot = end["governance"]  # what a resumed run restores from
    assert snapshot["offices"]["doge"]["holders"] == ["council#4"]
    resumed = Controller(venice(project, term=2), ledger=MemoryLedger())
    resumed.restore(snapshot)
    assert resumed.snapshot() == controller.snapshot()
    assert resumed.actor_for("i2", "govern", "doge") == "council#4"
    resumed.end_item("i2", "completed")  # the term, counted from before the resumption
    assert not resumed.office_held("doge")


def test_an_institution_without_offices_writes_no_snapshot_without_an_overlay() -> None:
    from tests.engine_harness import institution_at

    ledger = MemoryLedger()
    controller = Controller(institution_at("institutions/tang.yaml"), ledger=ledger)
    controller.end_item("i1", "completed")
    (end,) = [e["body"] for e in ledger.of_kind("item")]
    assert "governance" not in end and "offices" not in controller.snapshot()


# -- the engine ---------------------------------------------------------------------------


def run_items(
    institution: Institution,
    count: int,
    *,
    elect: list[str] | None = None,
) -> tuple[list[dict[str, Any]], MemoryLedger, ScriptedClient]:
    """``count`` items one after another through the compiled institution under one
    Controller, every model scripted; with ``elect``, the test chooses the office's holder
    before an item that finds it vacant (the next seat on the list), as its lot would."""
    ledger = MemoryLedger()
    controller = Controller(institution, ledger=ledger)
    client = ScriptedClient({})
    router = ModelRouter(clients={model: client for model in {*COUNCIL_MODELS, "sim/doge"}})
    context = RunContext(
        institution,
        GSM8K(),
        router,
        {"doge": "sim/doge"},
        golds={f"i{n}": "1" for n in range(1, count + 1)},
        controller=controller,
        seat_models={f"council#{n}": m for n, m in enumerate(COUNCIL_MODELS, 1)},
    )
    compiled = compile_institution(institution)
    elected = iter(elect or [])
    states = []
    for n in range(1, count + 1):
        item = f"i{n}"
        controller.begin_item(item)
        if elect is not None and not controller.office_held("doge"):
            controller.fill_office(item, "doge", [next(elected)], "elect")
        state = asyncio.run(
            compiled.graph.ainvoke(
                initial_state(item, "What is 1 + 0?"),
                {"recursion_limit": compiled.recursion_limit},
                context=context,
            )
        )
        controller.end_item(item, state["outcome"])
        states.append(state)
    return states, ledger, client


def governor(state: dict[str, Any]) -> tuple[str, str]:
    (turn,) = [t for t in state["turns"] if t["stage"] == "govern"]
    return turn["agent"], turn["model"]


def test_the_holder_governs_every_item_of_its_term_on_its_own_model(project: Path) -> None:
    states, ledger, client = run_items(venice(project, term=2), 4, elect=["council#2", "council#4"])
    assert [s["path"] for s in states] == [["seat", "govern", "end"]] * 4
    assert [s["outcome"] for s in states] == ["completed"] * 4
    assert [governor(s) for s in states] == [
        ("council#2", "sim/weak"),
        ("council#2", "sim/weak"),
        ("council#4", "sim/strong"),
        ("council#4", "sim/strong"),
    ]
    system = client.requests[0].messages[0]["content"]
    assert system.startswith("You are the Doge of Venice in Republic of Venice")
    assert "Govern the Republic" in system
    events = [(e["event"], e["holders"], e["item"]) for e in office_events(ledger)]
    assert events == [
        ("chosen", ["council#2"], "i1"),
        ("term_ended", ["council#2"], "i2"),
        ("chosen", ["council#4"], "i3"),
        ("term_ended", ["council#4"], "i4"),
    ]


def test_a_vacant_office_stage_sends_the_item_to_the_stage_that_fills_it(project: Path) -> None:
    pytest.importorskip("govern.engine.stages.lot")
    states, ledger, _ = run_items(venice(project, term=2), 5)
    assert [s["path"] for s in states] == [
        ["seat", "elect", "govern", "end"],
        ["seat", "govern", "end"],
        ["seat", "elect", "govern", "end"],
        ["seat", "govern", "end"],
        ["seat", "elect", "govern", "end"],
    ]
    chosen = [e for e in office_events(ledger) if e["event"] == "chosen"]
    assert [e["item"] for e in chosen] == ["i1", "i3", "i5"]
    (lot,) = [e["body"] for e in ledger.of_kind("lot") if e["body"]["item"] == "i1"]
    assert chosen[0]["holders"] == chosen[0]["seats"] == lot["drawn"]
    holders = [chosen[0]["holders"][0]] * 2 + [chosen[1]["holders"][0]] * 2
    holders.append(chosen[2]["holders"][0])
    assert [governor(s)[0] for s in states] == holders
    assert all(s["outcome"] == "completed" for s in states)


def test_items_in_flight_together_fill_a_vacant_office_once(project: Path) -> None:
    """Four items reach the vacant office at once: the first fills it, the others wait for
    its choice instead of drawing their own."""
    institution = venice(project, term="run")
    ledger = MemoryLedger()
    controller = Controller(institution, ledger=ledger)
    client = ScriptedClient({})
    router = ModelRouter(clients={model: client for model in {*COUNCIL_MODELS, "sim/doge"}})
    items = [f"i{n}" for n in range(1, 5)]
    context = RunContext(
        institution,
        GSM8K(),
        router,
        {"doge": "sim/doge"},
        golds=dict.fromkeys(items, "1"),
        controller=controller,
        seat_models={f"council#{n}": m for n, m in enumerate(COUNCIL_MODELS, 1)},
    )
    compiled = compile_institution(institution)

    async def one(item: str) -> dict[str, Any]:
        controller.begin_item(item)
        state = await compiled.graph.ainvoke(
            initial_state(item, "What is 1 + 0?"),
            {"recursion_limit": compiled.recursion_limit},
            context=context,
        )
        controller.end_item(item, state["outcome"])
        return state

    async def all_at_once() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(one(item) for item in items)))

    states = asyncio.run(all_at_once())
    assert sum(s["path"].count("elect") for s in states) == 1
    assert [e["event"] for e in office_events(ledger)] == ["chosen"]
    assert all(s["outcome"] == "completed" for s in states)
    (holder,) = office_events(ledger)[0]["holders"]
    assert {governor(s)[0] for s in states} == {holder}


def test_an_item_that_ends_without_filling_the_office_hands_the_filling_on(
    project: Path,
) -> None:
    institution = venice(project)
    controller = Controller(institution, ledger=MemoryLedger())
    assert controller.offices.claim("doge", "i1") is True
    assert controller.offices.claim("doge", "i2") is None  # i1 is filling it: wait

    async def waiting() -> bool:
        waiter = asyncio.ensure_future(controller.office_stage("i2", "doge"))
        await asyncio.sleep(0)
        assert not waiter.done()
        controller.end_item("i1", "error")  # i1 ends without filling the office
        return await waiter

    assert asyncio.run(waiting()) is False  # i2 now fills it: the office is not held
    assert controller.offices.filling == {"doge": "i2"}


def test_an_item_keeps_the_holders_it_found_when_the_term_ends_meanwhile(project: Path) -> None:
    """Item i1 found the office held; item i2 ends and the term with it. i1's business is
    finished by the holder it found, while the next item to ask finds the office vacant."""
    controller = Controller(venice(project, term=1), ledger=MemoryLedger())
    controller.fill_office("i0", "doge", ["council#3"], "elect")
    assert asyncio.run(controller.office_stage("i1", "doge")) is True
    controller.end_item("i2", "completed")  # the one-item term is over
    assert not controller.office_held("doge")
    assert controller.actor_for("i1", "govern", "doge") == "council#3"
    assert controller.actor_for("i3", "govern", "doge") is None  # vacant for anyone else
    controller.end_item("i1", "completed")
    assert controller.actor_for("i1", "govern", "doge") is None  # the binding ended with i1


def test_a_holder_samples_as_the_office_it_speaks_as(project: Path) -> None:
    """The manifest's sampling for the office role applies to whoever holds it, not the
    sampling of the holder's own role."""
    institution = venice(project, term="run")
    controller = Controller(institution, ledger=MemoryLedger())
    client = ScriptedClient({})
    router = ModelRouter(clients={model: client for model in {*COUNCIL_MODELS, "sim/doge"}})
    sampling = SamplingPolicy.model_validate(
        {"roles": {"doge": {"temperature": 0.3}, "council": {"temperature": 1.5}}}
    )
    context = RunContext(
        institution,
        GSM8K(),
        router,
        {"doge": "sim/doge"},
        golds={"i1": "1"},
        controller=controller,
        sampling=sampling,
        seat_models={f"council#{n}": m for n, m in enumerate(COUNCIL_MODELS, 1)},
    )
    compiled = compile_institution(institution)
    controller.begin_item("i1")
    state = asyncio.run(
        compiled.graph.ainvoke(
            initial_state("i1", "What is 1 + 0?"),
            {"recursion_limit": compiled.recursion_limit},
            context=context,
        )
    )
    (turn,) = [t for t in state["turns"] if t["stage"] == "govern"]
    assert turn["agent"].startswith("council#")
    assert turn["temperature"] == 0.3 and client.requests[-1].temperature == 0.3


def test_an_office_names_no_model_of_its_own(project: Path) -> None:
    """Its holders speak on their own seats' models: a model for the office is an error at
    its line, in the institution, in a manifest, and on the command line."""
    from govern.cli import main
    from tests.conftest import spec_errors

    text = VENICE.replace("TERM", "run")
    own = write(
        project,
        "own.yaml",
        text.replace("    office: {term: run}", "    model: sim/strong\n    office: {term: run}"),
    )
    (error,) = spec_errors(own)
    assert (error.line, error.column) == (15, 5) and "is an office" in error.message
    write(project, "venice.yaml", text)
    for key, value in (("roles", "sim/strong"), ("seats", "[sim/strong]")):
        manifest = write(
            project,
            f"m_{key}.yaml",
            f"id: m\ninstitution: venice.yaml\nmodels:\n  {key}: {{doge: {value}}}\n",
        )
        (error,) = spec_errors(manifest)
        assert (error.line, error.column) == (4, 11) and "is an office" in error.message
    status = main(["run", str(project / "venice.yaml"), "--task", "gsm8k", "--limit", "1",
                   "--role-model", "doge=sim/strong", "--out", str(project / "run")])  # fmt: skip
    assert status == 2  # a wrong argument, as a --role-model naming no role


def test_two_items_filling_two_offices_in_opposite_orders_do_not_wait_on_each_other(
    project: Path,
) -> None:
    """i1 is filling the doge's office and i2 another; each then finds the other's office
    being filled. An item that is filling an office fills the next one itself instead of
    waiting, so neither waits for ever."""
    book = Controller(venice(project), ledger=MemoryLedger()).offices
    book.terms["consul"] = "run"  # a second office, as an institution with two would have
    assert book.claim("doge", "i1") is True
    assert book.claim("consul", "i2") is True
    assert book.claim("consul", "i1") is True  # i1 fills the consulship too: it never waits
    assert book.claim("doge", "i2") is True
    assert book.claim("doge", "i3") is None  # an item filling nothing waits for the filler


def test_an_agent_suspended_before_it_is_seated_cannot_take_office(project: Path) -> None:
    """Chosen by an election during which it was suspended: the choice is refused and the
    office stays vacant, so the next item fills it rather than every item stopping on a
    holder who may not act."""
    ledger = MemoryLedger()
    controller = Controller(
        venice(project, term="run"), suspending({"kind": "suspension", "items": 2}), ledger
    )
    unparsable_turn(controller, "council#3")
    unparsable_turn(controller, "council#3")  # suspended
    assert controller.offices.claim("doge", "i1") is True
    assert controller.fill_office("i1", "doge", ["council#3"], "elect") is False
    assert not controller.office_held("doge")
    refused = office_events(ledger)[-1]
    assert refused["event"] == "refused" and refused["reason"] == "council#3 is suspended"
    assert controller.offices.claim("doge", "i2") is True  # the filling is free again
    assert controller.fill_office("i2", "doge", ["council#4"], "elect") is True
