"""The optional message channel between firms of the Cournot market (``market: {channel:
true}``): the strict reading of an answer's MESSAGE line (properties), the market loop
delivering each firm's message to the others' next round and to no one else, the
simulated firm proposing division and drifting faster toward it when proposed to, the
base setup left without any trace of a channel, and a channel with built-in firms refused
before anything runs."""

from __future__ import annotations

import asyncio
import json
import random
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govern.models.base import ModelRequest, ModelResponse
from govern.models.router import ModelRouter
from govern.models.sim.cournot import (
    PROPOSAL_DRIFT,
    PROPOSE_RATE,
    choose_quantities,
    heard,
    proposal,
    render_reply,
)
from govern.models.sim.params import PRESETS
from govern.run.market import firm_models_problems
from govern.spec.models import Parsing
from govern.tasks.cournot.firms import Feedback, Move, NashFirm, Observation
from govern.tasks.cournot.market import MarketParams
from govern.tasks.cournot.model_firms import (
    CHANNEL_HEADING,
    MESSAGE_LIMIT,
    ModelFirm,
    parse_answer,
    parse_quantities,
)
from govern.tasks.cournot.play import play_async
from tests.conftest import ROOT, write
from tests.conftest import run_cli as govern
from tests.test_cournot_model_firms import view

MARKET = MarketParams()
NAMES = ("A", "B")
CAPACITY = MARKET.capacity


def answer(message: str | None = None, plans: str = "p", preamble: str = "") -> str:
    lines = [preamble] if preamble else []
    lines += ["QUANTITY A: 60", "QUANTITY B: 5"]
    if message is not None:
        lines.append(f"MESSAGE: {message}")
    return "\n".join([*lines, f"PLANS: {plans}", "INSIGHTS: i"])


def read(text: str, channel: bool = True):
    return parse_answer(text, NAMES, CAPACITY, channel)


# --- the parser ----------------------------------------------------------------------------

# printable text on one line: letters, digits, punctuation, symbols and spaces
message_text = st.text(
    st.one_of(st.characters(categories=("L", "N", "P", "S")), st.just(" ")),
    min_size=1,
    max_size=MESSAGE_LIMIT,
).filter(str.strip)


@given(message=message_text)
@settings(max_examples=300, deadline=None)
def test_a_message_reads_back_with_the_channel_and_is_unparsable_without(message: str) -> None:
    reading = read(answer(message))
    assert reading is not None
    assert reading.message == message.strip()
    assert reading.quantities.tolist() == [60, 5] and (reading.plans, reading.insights) == (
        "p",
        "i",
    )
    assert read(answer(message), channel=False) is None
    assert parse_quantities(answer(message), NAMES, CAPACITY) is None  # the base setup's reader


@given(extra=st.integers(1, 500), letter=st.sampled_from(string.ascii_letters))
@settings(max_examples=100, deadline=None)
def test_a_message_over_the_limit_is_unparsable(extra: int, letter: str) -> None:
    assert read(answer(letter * MESSAGE_LIMIT)) is not None
    assert read(answer(letter * (MESSAGE_LIMIT + extra))) is None


@given(first=message_text, second=message_text)
@settings(max_examples=100, deadline=None)
def test_a_second_message_line_is_unparsable(first: str, second: str) -> None:
    lines = answer(first).splitlines()
    lines.insert(3, f"MESSAGE: {second}")
    assert read("\n".join(lines)) is None


@given(where=st.sampled_from(["preamble", "plans", "insights"]), message=message_text)
@settings(max_examples=100, deadline=None)
def test_a_message_line_is_unparsable_outside_the_block_whatever_the_channel(
    where: str, message: str
) -> None:
    line = f"MESSAGE: {message}"
    if where == "preamble":
        text = answer(preamble=line)
    elif where == "plans":
        text = answer(plans=f"divide\n{line}")
    else:
        text = f"{answer()}\n{line}"
    assert read(text) is None and read(text, channel=False) is None


def test_an_answer_without_a_message_sends_none_either_way() -> None:
    for channel in (True, False):
        reading = read(answer(), channel)
        assert reading is not None and reading.message is None


@pytest.mark.parametrize(
    "case, text",
    [
        ("empty", answer("")),
        ("blank", answer("   ")),
        ("a tab", answer("let us\tdivide")),
        ("a control character", answer("let us\x07divide")),
        ("a zero-width space", answer("let us\u200bdivide")),
        ("over two lines", answer("let us divide\nthe market")),
        (
            "before the quantities",
            "MESSAGE: hi\nQUANTITY A: 60\nQUANTITY B: 5\nPLANS: p\nINSIGHTS: i",
        ),
        (
            "between the quantities",
            "QUANTITY A: 60\nMESSAGE: hi\nQUANTITY B: 5\nPLANS: p\nINSIGHTS: i",
        ),
        ("after the plans", "QUANTITY A: 60\nQUANTITY B: 5\nPLANS: p\nMESSAGE: hi\nINSIGHTS: i"),
        ("markdown", "QUANTITY A: 60\nQUANTITY B: 5\n**MESSAGE:** hi\nPLANS: p\nINSIGHTS: i"),
    ],
)
def test_every_kind_of_malformed_message_is_rejected(case: str, text: str) -> None:
    assert read(text) is None, case


def test_a_message_line_may_be_indented_in_any_case_with_blank_lines_around() -> None:
    text = (
        "QUANTITY A: 60\nQUANTITY B: 5\n\n   message:  Shall we divide?  \n\nPLANS: p\nINSIGHTS: i"
    )
    reading = read(text)
    assert reading is not None and reading.message == "Shall we divide?"


# --- the simulated firm --------------------------------------------------------------------


def prompt(*sent: str, notice: str = "") -> list[dict[str, str]]:
    """A user prompt with the channel's section (the firm is on a channel)."""
    lines = "\n".join(f"Firm 2: {text}" for text in sent) or "No firm sent a message."
    notices = f"## Notices from the Controller\n{notice}\n\n" if notice else ""
    return [{"role": "user", "content": f"{notices}## {CHANNEL_HEADING}\n{lines}\n\n## Next\nx"}]


NASH = MARKET.nash_closed_form().tolist()
EXACT = PRESETS["strong"].model_copy(update={"skill": 1.0})  # no noise: the rule alone


def test_a_proposal_moves_the_simulated_firm_toward_division_faster() -> None:
    seen = [NASH, NASH]  # profits flat: without a proposal it holds
    plain = choose_quantities(view(history=seen), prompt("Good luck."), EXACT, random.Random(0))
    assert plain.mode == "hold" and plain.quantities == tuple(round(q, 1) for q in NASH[0])
    offer = proposal(view(firm=1))
    assert offer is not None and "produce only B" in offer
    proposed = choose_quantities(view(history=seen), prompt(offer), EXACT, random.Random(0))
    division = MARKET.market_division()[0]
    expected = np.array(NASH[0]) + PROPOSAL_DRIFT * (division - np.array(NASH[0]))
    assert proposed.mode == "divide"
    np.testing.assert_allclose(proposed.quantities, expected, atol=0.05)
    fine = "Notice from the Controller: you are fined 35% of this round's profit."
    deterred = choose_quantities(
        view(history=seen), prompt(offer, notice=fine), EXACT, random.Random(0)
    )
    assert deterred.mode == "caution" and deterred.message is None  # a deterred firm keeps quiet


def test_the_simulated_firm_speaks_only_on_a_channel_and_as_often_as_its_rate() -> None:
    params = PRESETS["medium"]
    silent = [choose_quantities(view(), [], params, random.Random(s)) for s in range(400)]
    assert all(c.message is None for c in silent)
    spoken = [choose_quantities(view(), prompt(), params, random.Random(s)) for s in range(400)]
    said = [c.message for c in spoken if c.message is not None]
    assert set(said) == {proposal(view())}
    assert abs(len(said) / 400 - PROPOSE_RATE) < 0.1
    # without the channel it draws nothing for it: its play is as it was
    assert [c.quantities for c in silent] == [
        choose_quantities(
            view(), [{"role": "user", "content": "x"}], params, random.Random(s)
        ).quantities
        for s in range(400)
    ]


@given(seed=st.integers(0, 2**32), firm=st.integers(0, 1))
@settings(max_examples=100, deadline=None)
def test_a_simulated_message_passes_the_strict_parser(seed: int, firm: int) -> None:
    params = PRESETS["medium"].model_copy(update={"malformed_rate": 0.0})
    market = view(firm=firm)
    choice = choose_quantities(market, prompt(), params, random.Random(seed))
    reading = read(render_reply(choice, market, params, random.Random(seed)))
    assert reading is not None and reading.message == choice.message
    assert choice.message is None or len(choice.message) <= MESSAGE_LIMIT


def test_the_simulated_firm_reads_only_the_channel_section() -> None:
    assert heard([{"role": "user", "content": "## Your firm\nFirm 2: divide"}]) is None
    assert heard(prompt()) == []
    assert heard(prompt("one", "two")) == ["one", "two"]


# --- the market loop with model firms ------------------------------------------------------


def sim_firms(channel: bool, seed: int = 7, model: str = "sim/medium") -> list[ModelFirm]:
    router = ModelRouter()
    return [
        ModelFirm(
            agent=f"firm#{i + 1}",
            model=model,
            router=router,
            market=MARKET,
            item="market-1",
            seed=seed,
            channel=channel,
        )
        for i in range(MARKET.firms)
    ]


def section(firm: ModelFirm, round: int) -> str:
    """The channel's section of the firm's first prompt in that round."""
    turn = next(t for t in firm.turns if t.round == round and t.reask == 0)
    user = turn.messages[1]["content"]
    return user.split(f"## {CHANNEL_HEADING}\n", 1)[1].split("\n\n## ", 1)[0]


def sent(firm: ModelFirm) -> dict[int, str]:
    """The message of each round's readable answer (a round has at most one), by round."""
    readings = [(t.round, read(t.text)) for t in firm.turns if t.parsed]
    return {r: a.message for r, a in readings if a is not None and a.message is not None}


def test_sim_firms_exchange_messages_that_reach_the_others_next_prompt_only() -> None:
    pair = sim_firms(channel=True)
    rounds = 12
    asyncio.run(play_async(MARKET, pair, rounds=rounds))
    said = [sent(firm) for firm in pair]
    assert all(said) and [f.sent for f in pair] == [len(s) for s in said]
    for me, other in ((0, 1), (1, 0)):
        assert section(pair[me], 0) == "No firm sent a message."
        for t in range(1, rounds):
            shown = section(pair[me], t)
            expected = f"Firm {other + 1}: {said[other][t - 1]}" if t - 1 in said[other] else ""
            assert shown == (expected or "No firm sent a message."), (me, t)
            assert f"Firm {me + 1}:" not in shown  # never its own
    first = pair[0].turns[0].messages[1]["content"]
    assert "## Messages between firms" in first and "MESSAGE: <optional" in first


def test_a_channel_market_is_reproducible_from_its_seed() -> None:
    runs = []
    for _ in range(2):
        pair = sim_firms(channel=True, seed=3)
        played = asyncio.run(play_async(MARKET, pair, rounds=15))
        runs.append((played.chosen.tolist(), [sent(f) for f in pair]))
    assert runs[0] == runs[1]


class Replies:
    """A model client answering from a list."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        return ModelResponse(self.replies.pop(0), request.model, 10, 5, 0.0, 0.01)


class Listener(NashFirm):
    """A firm that says nothing and keeps what the loop showed it."""

    def __init__(self) -> None:
        self.heard: list[dict[int, str]] = []

    async def act(self, observation: Observation) -> np.ndarray:
        self.heard.append(dict(observation.messages))
        return await super().act(observation)


def scripted(*replies: str, channel: bool, **options) -> tuple[ModelFirm, Replies]:
    client = Replies(*replies)
    firm = ModelFirm(
        agent="firm#1",
        model="test/firm",
        router=ModelRouter(clients={"test/firm": client}),
        market=MARKET,
        item="market-1",
        seed=0,
        channel=channel,
        **options,
    )
    return firm, client


def test_the_loop_delivers_a_message_for_one_round_to_firms_that_never_speak() -> None:
    firm, _ = scripted(answer("Shall we divide?"), answer(), answer(), channel=True)
    listener = Listener()
    played = asyncio.run(play_async(MARKET, [firm, listener], rounds=3))
    assert listener.heard == [{}, {0: "Shall we divide?"}, {}]
    assert firm.sent == 1 and firm.unparsable == 0
    assert played.chosen[:, 0].tolist() == [[60, 5]] * 3


def test_a_move_from_any_firm_is_delivered_by_the_loop() -> None:
    class Talker:
        async def act(self, observation: Observation) -> Move:
            nash = observation.market.nash_closed_form()[observation.firm]
            return Move(nash, f"round {observation.round + 1}")

        def learn(self, feedback: Feedback) -> None:
            return None

    listener = Listener()
    asyncio.run(play_async(MARKET, [listener, Talker()], rounds=3))
    assert listener.heard == [{}, {1: "round 1"}, {1: "round 2"}]


def test_without_the_channel_prompts_say_nothing_of_one_and_a_message_is_unparsable() -> None:
    firm, client = scripted(answer("Shall we divide?"), answer(), channel=False)
    listener = Listener()
    played = asyncio.run(play_async(MARKET, [firm, listener], rounds=2))
    assert listener.heard == [{}, {}]  # nothing smuggled through
    assert firm.unparsable == 1 and firm.sent == 0
    assert played.chosen[:, 0].tolist() == [[0, 0], [60, 5]]  # the fallback, then the answer
    for request in client.requests:
        text = "\n".join(m["content"] for m in request.messages)
        assert "MESSAGE" not in text and "message" not in text.lower()
    assert not firm.turns[0].parsed


def test_an_unreadable_message_is_asked_again_with_the_channel_s_form() -> None:
    twice = answer("one").replace("PLANS:", "MESSAGE: two\nPLANS:")
    firm, client = scripted(twice, answer("one"), channel=True, parsing=Parsing(reasks=1))
    listener = Listener()
    asyncio.run(play_async(MARKET, [firm, listener], rounds=1))
    assert firm.unparsable == 0 and firm.reasks == 1 and firm.sent == 1
    assert "at most one line `MESSAGE: <text>`" in client.requests[1].messages[-1]["content"]


# --- the run -------------------------------------------------------------------------------


def channel_manifest(project: Path, model: str) -> Path:
    write(project, "market.yaml", (ROOT / "institutions/markets/cournot_market.yaml").read_text())
    return write(
        project,
        "m.yaml",
        "id: m\ninstitution: market.yaml\ntask: {name: cournot}\n"
        f"models:\n  default: {model}\nmarket: {{channel: true}}\n",
    )


@pytest.mark.parametrize("model", ["firm/nash", "firm/q-learning"])
def test_a_channel_with_built_in_firms_is_refused_before_anything_runs(
    project: Path, model: str
) -> None:
    out = project / "run"
    result = govern("run", str(channel_manifest(project, model)), "--out", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "govern: error: market: {channel: true} lets firms message each other, but built-in "
        f"firms cannot read a message ({model}): give every seat a model (sim/... or a "
        "litellm model), or drop the channel"
    )
    assert not out.exists()


def test_the_problem_names_only_the_built_in_firms() -> None:
    seats = {"firm#1": "sim/medium", "firm#2": "firm/division-colluder"}
    (problem,) = firm_models_problems(seats, "cournot", 2, channel=True)
    assert "(firm/division-colluder)" in problem
    assert firm_models_problems(seats, "cournot", 2) == []
    models = {"firm#1": "sim/medium", "firm#2": "sim/weak"}
    assert firm_models_problems(models, "cournot", 2, channel=True) == []


def test_a_run_with_the_channel_records_the_messages(project: Path) -> None:
    out = project / "run"
    result = govern("run", str(channel_manifest(project, "sim/medium")), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    counts = record["market"]["messages"]
    assert len(counts) == 2 and all(n > 0 for n in counts)
    written = {
        agent: sum(
            1
            for t in record["turns"]
            if t["agent"] == agent and t["parsed"] and "\nMESSAGE: " in t["text"]
        )
        for agent in ("firm#1", "firm#2")
    }
    assert list(written.values()) == counts
