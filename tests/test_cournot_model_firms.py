"""Model firms of the Cournot market: the strict answer parser (properties), the simulated
firm (its answers parse, its malformed ones do not, it turns cautious after a fine), and
ModelFirm through a real ModelRouter: prompts, notices, re-asks, fallbacks on unparsable
answers and failed calls, the Controller's records, determinism from the seed, and one
real HTTP round-trip through litellm to a loopback server."""

from __future__ import annotations

import asyncio
import json
import random
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from govern.engine.seeds import call_seed
from govern.governance.controller import Controller
from govern.models.base import MarketView, ModelError, ModelRequest, ModelResponse
from govern.models.router import ModelRouter
from govern.models.sim.cournot import (
    CAUTION_ROUNDS,
    choose_quantities,
    deterring_notice,
    render_reply,
)
from govern.models.sim.params import PRESETS
from govern.spec.checks import checked_institution, load_checked
from govern.spec.models import Parsing, SimOverride
from govern.tasks.cournot.firms import Firm
from govern.tasks.cournot.market import MarketParams
from govern.tasks.cournot.model_firms import ModelFirm, parse_quantities
from govern.tasks.cournot.play import Play, Regime, play_async
from tests.conftest import write
from tests.fault_server import FaultServer

MARKET = MarketParams()
NAMES = ("A", "B")
CAPACITY = MARKET.capacity


def answer(
    quantities: Sequence[str], plans: str = "p", insights: str = "i", preamble: str = ""
) -> str:
    lines = [preamble] if preamble else []
    lines += [f"QUANTITY {n}: {q}" for n, q in zip(NAMES, quantities, strict=True)]
    return "\n".join([*lines, f"PLANS: {plans}", f"INSIGHTS: {insights}"])


def read(text: str) -> tuple[np.ndarray, str, str] | None:
    return parse_quantities(text, NAMES, CAPACITY)


# --- the parser ----------------------------------------------------------------------------

# a line of free text or notes: never one the parser would take for a line of the block
safe_line = st.text(
    alphabet=string.ascii_letters + string.digits + " .,;!?'()-", max_size=40
).filter(lambda line: not line.strip().lower().startswith(("quantity", "plans", "insights")))
notes = st.lists(safe_line, max_size=4).map("\n".join)
thousandths = st.integers(0, int(CAPACITY * 1000))


def written(n: int, whole: bool) -> str:
    """A quantity in thousandths as a model might write it: 45 or 45.125."""
    return str(n // 1000) if whole else f"{n // 1000}.{n % 1000:03d}"


@given(
    amounts=st.lists(st.tuples(thousandths, st.booleans()), min_size=2, max_size=2),
    plans=notes,
    insights=notes,
    preamble=notes,
)
@settings(max_examples=300, deadline=None)
def test_a_well_formed_answer_reads_back(
    amounts: list[tuple[int, bool]], plans: str, insights: str, preamble: str
) -> None:
    quantities = [written(n, whole) for n, whole in amounts]
    reading = read(answer(quantities, plans, insights, preamble))
    assert reading is not None
    parsed, parsed_plans, parsed_insights = reading
    expected = [(n // 1000 if whole else n / 1000) for n, whole in amounts]
    assert parsed.tolist() == expected
    assert (parsed_plans, parsed_insights) == (plans.strip(), insights.strip())


def test_commodity_lines_may_come_in_any_order_and_notes_run_over_lines() -> None:
    text = "Reasoning first.\nQUANTITY B: 20\n\nQUANTITY A: 60.5\nPLANS: one\ntwo\nINSIGHTS:\n  x\n"
    reading = read(text)
    assert reading is not None
    parsed, plans, insights = reading
    assert parsed.tolist() == [60.5, 20.0] and plans == "one\ntwo" and insights == "x"
    assert read("quantity a: 1\nQuantity b: 2\nplans: p\ninsights: i") is not None


@given(st.text())
@settings(max_examples=300, deadline=None)
@example("QUANTITY A: 1\nQUANTITY B: 2")
@example("I will produce 60 units of A and none of B.")
def test_garbage_never_parses(text: str) -> None:
    assert read(text) is None


@given(amounts=st.lists(thousandths, min_size=2, max_size=2), line=st.integers(0, 3))
@settings(max_examples=100, deadline=None)
def test_an_answer_missing_any_line_of_its_block_is_unparsable(
    amounts: list[int], line: int
) -> None:
    lines = answer([written(n, False) for n in amounts]).splitlines()
    del lines[line]
    assert read("\n".join(lines)) is None


@given(
    amounts=st.lists(thousandths, min_size=2, max_size=2),
    line=st.integers(0, 3),
    at=st.integers(0, 4),
)
@settings(max_examples=150, deadline=None)
def test_an_answer_repeating_any_line_of_its_block_is_unparsable(
    amounts: list[int], line: int, at: int
) -> None:
    lines = answer([written(n, False) for n in amounts]).splitlines()
    lines.insert(at, lines[line])
    assert read("\n".join(lines)) is None


@given(over=st.floats(min_value=CAPACITY, max_value=1e12, exclude_min=True))
@settings(max_examples=100, deadline=None)
def test_a_quantity_above_capacity_is_unparsable(over: float) -> None:
    text = f"{over:.6f}"
    if float(text) > CAPACITY:
        assert read(answer([text, "1"])) is None


@given(amount=thousandths)
def test_a_negative_quantity_is_unparsable(amount: int) -> None:
    assert read(answer(["1", f"-{written(amount, False)}"])) is None


@pytest.mark.parametrize(
    "case, text",
    [
        ("missing commodity", "QUANTITY A: 1\nPLANS: p\nINSIGHTS: i"),
        ("duplicated commodity", "QUANTITY A: 1\nQUANTITY A: 2\nPLANS: p\nINSIGHTS: i"),
        ("unknown commodity", "QUANTITY A: 1\nQUANTITY C: 2\nPLANS: p\nINSIGHTS: i"),
        ("infinite", answer(["inf", "1"])),
        ("not a number", answer(["nan", "1"])),
        ("overflowing", answer(["9" * 400, "1"])),
        ("exponent", answer(["1e3", "1"])),
        ("above capacity", answer(["100.001", "1"])),
        ("negative", answer(["-0", "1"])),
        ("plus sign", answer(["+5", "1"])),
        ("unit", answer(["45 units", "1"])),
        ("two numbers", answer(["45 or 50", "1"])),
        ("range", answer(["40-50", "1"])),
        ("words", answer(["about 40", "1"])),
        ("bare point", answer(["45.", "1"])),
        ("thousands separator", answer(["1,000", "1"])),
        ("markdown", "**QUANTITY A:** 1\n**QUANTITY B:** 2\nPLANS: p\nINSIGHTS: i"),
        ("no plans", "QUANTITY A: 1\nQUANTITY B: 2\nINSIGHTS: i"),
        ("no insights", "QUANTITY A: 1\nQUANTITY B: 2\nPLANS: p"),
        ("insights first", "QUANTITY A: 1\nQUANTITY B: 2\nINSIGHTS: i\nPLANS: p"),
        ("quantity after plans", "QUANTITY A: 1\nPLANS: p\nQUANTITY B: 2\nINSIGHTS: i"),
        (
            "text inside the block",
            "QUANTITY A: 1\nsince B is dear:\nQUANTITY B: 2\nPLANS: p\nINSIGHTS: i",
        ),
        ("marker in the notes", answer(["1", "2"], plans="x\nQuantity A: 3")),
        ("a second plans", answer(["1", "2"], insights="x\nPLANS: more")),
        ("marker in the reasoning", answer(["1", "2"], preamble="Quantity A: maybe 10?")),
    ],
)
def test_every_kind_of_malformed_answer_is_rejected(case: str, text: str) -> None:
    assert read(text) is None, case


# --- the simulated firm --------------------------------------------------------------------


def view(firm: int = 0, history: Sequence[Sequence[Sequence[float]]] = ()) -> MarketView:
    return MarketView(
        firm=firm,
        a=MARKET.a,
        b=MARKET.b,
        capacity=MARKET.capacity,
        costs=MARKET.costs,
        quantities=tuple(tuple(tuple(row) for row in rnd) for rnd in history),
    )


costs = st.floats(0, 90, allow_nan=False)
quantity = st.floats(0, CAPACITY, allow_nan=False)


@given(
    cost_table=st.lists(st.lists(costs, min_size=2, max_size=2), min_size=2, max_size=3),
    history=st.lists(
        st.lists(st.lists(quantity, min_size=2, max_size=2), min_size=3, max_size=3), max_size=4
    ),
    seed=st.integers(0, 2**32),
    model=st.sampled_from(sorted(PRESETS)),
)
@settings(max_examples=200, deadline=None)
def test_a_well_formed_simulated_reply_parses_within_capacity(
    cost_table: list[list[float]], history: list, seed: int, model: str
) -> None:
    firms = len(cost_table)
    seen = tuple(tuple(tuple(row) for row in rnd[:firms]) for rnd in history)
    market = MarketView(0, 100.0, 2.0, CAPACITY, tuple(map(tuple, cost_table)), seen)
    params = PRESETS[model].model_copy(update={"malformed_rate": 0.0})
    choice = choose_quantities(market, [], params, random.Random(seed))
    reading = read(render_reply(choice, market, params, random.Random(seed)))
    assert reading is not None
    assert reading[0].tolist() == list(choice.quantities)
    assert all(0 <= q <= CAPACITY for q in choice.quantities)


def test_a_malformed_simulated_reply_never_parses() -> None:
    params = PRESETS["medium"].model_copy(update={"malformed_rate": 1.0})
    shapes = set()
    for seed in range(200):
        choice = choose_quantities(view(), [], params, random.Random(seed))
        text = render_reply(choice, view(), params, random.Random(seed))
        assert read(text) is None, text
        shapes.add((text.count("QUANTITY"), "**" in text, "units" in text))
    assert len(shapes) == 4  # a line left out, prose, markdown, a unit


def test_the_first_round_is_played_near_nash() -> None:
    choice = choose_quantities(view(), [], PRESETS["strong"], random.Random(0))
    assert choice.mode == "nash"
    np.testing.assert_allclose(choice.quantities, MARKET.nash_closed_form()[0], atol=3)


def notice_prompt(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"## Notices from the Controller\n{text}\n\n## Next\nx"}]


def test_only_a_notice_of_a_sanction_deters() -> None:
    fined = "Notice from the Controller: under rule R your standing changed (fine), because S."
    restored = "Notice from the Controller: under rule R you are active again (3 clean items)."
    assert deterring_notice(notice_prompt(fined))
    assert deterring_notice(notice_prompt(f"{restored}\n\n{fined}"))
    assert not deterring_notice(notice_prompt(restored))
    # a constitution in the system prompt speaking of fines is not a notice
    assert not deterring_notice([{"role": "system", "content": "Collusion is fined."}])


# --- ModelFirm through a ModelRouter -------------------------------------------------------


def play_market(firms: Sequence[ModelFirm], rounds: int, fines: Regime | None = None, **kw) -> Play:
    """The real market loop with these firms (the market of the first firm)."""
    return asyncio.run(play_async(firms[0].market, firms, rounds=rounds, fines=fines, **kw))


def firms(
    model: str = "sim/medium",
    seed: int = 7,
    router: ModelRouter | None = None,
    market: MarketParams = MARKET,
    **options,
) -> list[ModelFirm]:
    router = router or ModelRouter()
    return [
        ModelFirm(
            agent=f"firm#{i + 1}",
            model=model,
            router=router,
            market=market,
            item="market-1",
            seed=seed,
            **options,
        )
        for i in range(MARKET.firms)
    ]


def test_simulated_firms_play_the_market_from_their_prompts() -> None:
    unusual = MarketParams(rounds=37)
    pair = firms(market=unusual)
    played = play_market(pair, 12).chosen
    assert isinstance(pair[0], Firm)
    assert played.shape == (12, 2, 2) and np.isfinite(played).all()
    first, second = pair[0].turns[0], pair[0].turns[1]
    system, user = first.messages[0]["content"], first.messages[1]["content"]
    assert "Firm 1, one of 2 firms" in system and "Constitution" not in system
    assert "Your unit costs: A 40, B 50." in user and "P = max(0, 100 - Q / 2)" in user
    assert "No rounds have been played yet." in user and "(empty)" in user
    assert "37" not in system + user  # never told how many rounds
    assert "Notices" not in user
    table = second.messages[1]["content"]
    assert "| round | price A | price B | firm 1 (you) A |" in table and "\n| 1 | " in table
    k = next(k for k, turn in enumerate(pair[0].turns) if turn.parsed)
    reading = read(pair[0].turns[k].text)  # its notes are in its next prompt
    assert reading is not None
    plans = f"## Your PLANS.txt (as you last wrote it)\n{reading[1]}"
    assert plans in pair[0].turns[k + 1].messages[1]["content"]
    assert [t.round for t in pair[0].turns] == list(range(12))
    assert [t.seed for t in pair[0].turns] == [
        call_seed(7, "market-1", "market", "firm#1", t + 1) for t in range(12)
    ]
    assert pair[0].turns[0].seed != pair[1].turns[0].seed


def test_a_constitution_joins_the_system_prompt() -> None:
    pair = firms(constitution="Firms shall not divide markets.")
    play_market(pair, 1)
    system = pair[0].turns[0].messages[0]["content"]
    assert system.endswith("## Constitution of the market\nFirms shall not divide markets.")


def test_the_same_seed_plays_the_same_market_and_another_does_not() -> None:
    once = play_market(firms(seed=3), 15).chosen
    again = play_market(firms(seed=3), 15, seed=9).chosen  # the market's own seed does not matter
    other = play_market(firms(seed=4), 15).chosen
    assert np.array_equal(once, again) and not np.array_equal(once, other)


MARKET_INSTITUTION = """\
id: market
name: Market
era: now
pattern: pipeline
history: Two firms in a market.
roles:
  - id: firm
    title: Firm
    seats: 2
    instructions: Produce.
entry: produce
stages:
  - id: produce
    kind: execute
    role: firm
    purpose: Produce.
    next: {done: done, unparsable: done}
  - id: done
    kind: terminal
"""


def market_controller(project: Path) -> Controller:
    path = write(project, "market.yaml", MARKET_INSTITUTION)
    return Controller(checked_institution(load_checked(path)))


def test_notices_reach_the_next_prompt_once_and_the_simulated_firm_turns_cautious(
    project: Path,
) -> None:
    controller = market_controller(project)
    pair = firms("sim/strong", seed=1, controller=controller)
    nash = MARKET.nash_closed_form()[0]
    fine = "Notice from the Controller: you are fined 30% of this round's profit for collusion."

    def fine_after_round_15(round: int, *_: np.ndarray) -> None:  # strong firms divide by then
        if round == 14:
            controller.agents["firm#1"].notices.append(fine)

    played = play_market(pair, 18, fine_after_round_15).chosen
    prompts = [t.messages[1]["content"] for t in pair[0].turns if t.reask == 0]
    assert f"## Notices from the Controller\n{fine}" in prompts[15]
    assert (
        "Notices" not in prompts[16] and "Notices" not in pair[1].turns[15].messages[1]["content"]
    )
    assert f"for {CAUTION_ROUNDS - 1} more rounds" in prompts[16]  # its own plan, carried
    before, after = (np.abs(played[t, 0] - nash).sum() for t in (14, 17))
    assert after < before / 2
    turns = [e["body"] for e in controller.ledger.of_kind("turn") if e["actor"] == "firm#1"]
    assert [(b["stage"], b["act"], b["visit"]) for b in turns[:2]] == [
        ("market", "produce", 1),
        ("market", "produce", 2),
    ]
    assert len(turns) == len(pair[0].turns)


class Replies:
    """A model client answering from a list: a text, or an exception to raise."""

    def __init__(self, *replies: str | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return ModelResponse(reply, request.model, 10, 5, 0.0, 0.01)


GOOD = answer(["60", "5"], plans="divide", insights="it pays")
LATER = answer(["50", "10"], plans="later", insights="seen")
BROKEN = ModelError("test/firm", "server error 500", attempts=3)


def scripted_firm(*replies: str | Exception, **options) -> tuple[ModelFirm, Replies]:
    client = Replies(*replies)
    router = ModelRouter(clients={"test/firm": client})
    firm = ModelFirm(
        agent="firm#1",
        model="test/firm",
        router=router,
        market=MARKET,
        item="market-1",
        seed=0,
        **options,
    )
    return firm, client


def act_rounds(firm: ModelFirm, rounds: int) -> list[list[float]]:
    other = ModelFirm(
        agent="firm#2",
        model="test/firm",
        router=ModelRouter(clients={"test/firm": Replies(*[GOOD] * rounds)}),
        market=MARKET,
        item="market-1",
        seed=0,
    )
    return play_market([firm, other], rounds).chosen[:, 0].tolist()


@pytest.mark.parametrize(
    "fallback, expected",
    [
        ("previous", [[0, 0], [60, 5], [60, 5], [50, 10]]),
        ("zero", [[0, 0], [60, 5], [0, 0], [50, 10]]),
    ],
)
def test_an_unparsable_answer_falls_back_and_is_counted(
    fallback: str, expected: list[list[float]]
) -> None:
    firm, _ = scripted_firm("no idea", GOOD, "QUANTITY A: lots", LATER, on_unparsable=fallback)
    assert act_rounds(firm, 4) == expected
    assert firm.unparsable == 2 and firm.failed_calls == 0
    assert (firm.plans, firm.insights) == ("later", "seen")
    # the notes of the last readable answer stand through an unparsable one
    assert (
        "## Your PLANS.txt (as you last wrote it)\ndivide" in firm.turns[3].messages[1]["content"]
    )


def test_a_failed_call_does_not_stop_the_market_and_is_visible(project: Path) -> None:
    controller = market_controller(project)
    firm, _ = scripted_firm(GOOD, BROKEN, LATER, controller=controller)
    assert act_rounds(firm, 3) == [[60, 5], [60, 5], [50, 10]]
    assert firm.unparsable == 1 and firm.failed_calls == 1
    assert str(firm.failures[0]) == "firm#1, round 2: test/firm: server error 500 after 3 attempts"
    failed = controller.ledger.of_kind("call_failed")
    assert [e["body"]["visit"] for e in failed] == [2] and failed[0]["body"]["reask"] == 0
    assert len(controller.ledger.of_kind("turn")) == 2


def test_a_reask_recovers_an_unparsable_answer_as_the_engine_records_it(project: Path) -> None:
    controller = market_controller(project)
    firm, client = scripted_firm(
        "I'd say 60 and 5.", GOOD, controller=controller, parsing=Parsing(reasks=2)
    )
    assert act_rounds(firm, 1) == [[60, 5]]
    assert firm.unparsable == 0 and firm.reasks == 1
    first, second = client.requests
    assert second.messages[:2] == first.messages
    assert second.messages[2] == {"role": "assistant", "content": "I'd say 60 and 5."}
    assert "could not be read" in second.messages[3]["content"]
    assert (first.oracle.reask, second.oracle.reask) == (0, 1)
    assert second.seed == call_seed(0, "market-1", "market", "firm#1", 1, 0, 1) != first.seed
    turns = [e["body"] for e in controller.ledger.of_kind("turn")]
    assert [(b["parsed"], b.get("reask", 0)) for b in turns] == [(False, 0), (True, 1)]


def test_a_failed_reask_leaves_the_round_unparsable(project: Path) -> None:
    controller = market_controller(project)
    firm, _ = scripted_firm(
        "no idea", BROKEN, controller=controller, parsing=Parsing(reasks=1), on_unparsable="zero"
    )
    assert act_rounds(firm, 1) == [[0, 0]]
    assert firm.unparsable == 1 and firm.reasks == 1 and firm.failures[0].reask == 1
    assert controller.ledger.of_kind("call_failed")[0]["body"]["reask"] == 1


def test_a_sloppy_simulated_model_exercises_the_unparsable_path() -> None:
    sloppy = {"sim/sloppy": SimOverride(base="medium", malformed_rate=0.5)}
    pair = firms("sim/sloppy", router=ModelRouter(simulator=sloppy), parsing=Parsing(reasks=1))
    play_market(pair, 20)
    unparsed = [t for f in pair for t in f.turns if not t.parsed]
    assert unparsed and all(read(t.text) is None for t in unparsed)
    assert sum(f.reasks for f in pair) == len([t for t in unparsed if t.reask == 0])
    assert 0 < sum(f.unparsable for f in pair) < sum(f.reasks for f in pair)


# --- a real HTTP round-trip ----------------------------------------------------------------


def test_a_firm_round_trips_through_litellm_to_a_loopback_server() -> None:
    served = ["ok"] * 4 + ["server_error"] * 2  # two rounds answered, then a failing one
    with FaultServer("ok", script=served, answer=lambda body: f"Reasoning.\n{GOOD}") as server:
        router = ModelRouter(api_base=server.url, api_key="test-key", timeout=10.0, max_retries=0)
        pair = firms("openai/fault-model", seed=5, router=router)
        played = play_market(pair, 3).chosen
    assert played.tolist() == [[[60, 5], [60, 5]]] * 3  # the failed round keeps the last
    assert all(f.failed_calls == 1 and f.unparsable == 1 for f in pair)
    assert "round 3" in str(pair[0].failures[0]) and "500" in str(pair[0].failures[0])
    sent = {json.dumps(body["messages"]): body for body in server.bodies}
    for firm in pair:  # its prompt as it was composed, with the call's own seed
        body = sent[json.dumps(firm.turns[0].messages)]
        assert body["seed"] == firm.turns[0].seed and body["model"] == "fault-model"


def test_an_unknown_fallback_is_refused() -> None:
    with pytest.raises(ValueError, match="on_unparsable"):
        scripted_firm(on_unparsable="average")
