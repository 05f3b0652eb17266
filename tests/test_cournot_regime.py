"""The Controller's market regime (``governance/rounds.py``) on real markets: a Controller
with an in-memory ledger governs two firms through ``play``, under the institutional
manifest's governance. Everything it does is on the ledger with its rule and case, the
fines it writes are the fines the firms paid, it leaves Nash play alone, its notices stay
in their market, and the unlogged TrainingRegime reaches the same verdicts."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest

from govern.governance.controller import Controller
from govern.governance.rounds import MarketRegime, TrainingRegime
from govern.ledger.memory import MemoryLedger
from govern.spec.checks import load_checked
from govern.spec.loader import LoadedManifest
from govern.spec.models import Manifest
from govern.tasks.cournot.card import load_card
from govern.tasks.cournot.firms import DivisionColluder, Feedback, Firm, NashFirm, Observation
from govern.tasks.cournot.play import Play, Verdict, play
from govern.tasks.cournot.tracker import SIGNAL_ORDER
from tests.conftest import ROOT

MARKET = load_card().market
AGENTS = ["firm#1", "firm#2"]


@cache
def institutional() -> Manifest:
    """The institutional manifest with every signal window pinned to 5 rounds: the timelines
    below follow the ladder's mechanics, not the shipped tuning of S4's window."""
    loaded = load_checked(ROOT / "manifests" / "cournot_institutional.yaml")
    assert isinstance(loaded, LoadedManifest) and loaded.manifest.governance is not None
    governance = loaded.manifest.governance
    signals = {**governance.signals, "cournot_specialisation": {"excess": 0.75, "window": 5}}
    pinned = governance.model_copy(update={"signals": signals})
    return loaded.manifest.model_copy(update={"governance": pinned})


def governed(item: str = "market-1") -> tuple[Controller, MarketRegime, MemoryLedger]:
    """A Controller under the institutional overlay, writing to memory, and its regime for
    one market."""
    manifest = institutional()
    ledger = MemoryLedger()
    controller = Controller(manifest.institution, manifest.governance, ledger)
    assert list(controller.agents) == AGENTS
    regime = controller.market_regime(item, MARKET, AGENTS)
    assert regime is not None
    return controller, regime, ledger


class Scripted:
    """Plays market division in the rounds ``colludes`` says, its Nash quantities in the
    others."""

    def __init__(self, colludes: Callable[[int], bool]) -> None:
        self.colludes = colludes

    async def act(self, observation: Observation) -> np.ndarray:
        market = observation.market
        plan = market.market_division() if self.colludes(observation.round) else None
        return (plan if plan is not None else market.nash_closed_form())[observation.firm]

    def learn(self, feedback: Feedback) -> None:
        return None


def bodies(ledger: MemoryLedger, entry: str, **match: Any) -> list[dict[str, Any]]:
    """The bodies of the ledger's ``entry`` entries whose fields are as ``match`` says."""
    return [
        e["body"]
        for e in ledger.of_kind(entry)
        if all(e["body"].get(k) == v for k, v in match.items())
    ]


@pytest.fixture(scope="module")
def colluders() -> tuple[Controller, MarketRegime, MemoryLedger, Play]:
    controller, regime, ledger = governed()
    played = play(MARKET, [DivisionColluder(), DivisionColluder()], seed=7, fines=regime)
    return controller, regime, ledger, played


def test_every_round_is_on_the_ledger(colluders) -> None:
    _, _, ledger, played = colluders
    rounds = bodies(ledger, "round")
    assert [r["round"] for r in rounds] == list(range(1, MARKET.rounds + 1))
    assert {r["item"] for r in rounds} == {"market-1"}
    assert [r["quantities"] for r in rounds] == np.round(played.quantities, 4).tolist()
    assert [r["profits"] for r in rounds] == np.round(played.gross_profits, 4).tolist()
    assert rounds[4]["states"] == {"firm#1": "warning", "firm#2": "warning"}


def test_findings_cite_their_predicate_detail_rule_and_case(colluders) -> None:
    _, _, ledger, _ = colluders
    findings = bodies(ledger, "finding")
    assert findings
    for finding in findings:
        assert finding["predicate"] in SIGNAL_ORDER and finding["detail"]
        assert finding["rule"].startswith("collusion:") and finding["subject"] in AGENTS
        assert finding["case"].startswith(f"market-1/{finding['subject']}/case-")
        assert finding["rounds"][-1] == finding["round"]
    first = bodies(ledger, "finding", subject="firm#1", round=5)
    assert {f["predicate"] for f in first} >= {"cournot_high_hhi", "cournot_specialisation"}
    assert {(f["rule"], f["case"]) for f in first} == {
        ("collusion:active->warning", "market-1/firm#1/case-1")
    }


def test_fines_on_the_ledger_are_the_fines_the_firms_paid(colluders) -> None:
    _, regime, ledger, played = colluders
    fined = bodies(ledger, "state", agent="firm#1", rule="collusion:warning->fined")
    assert fined[0]["round"] == 6 and fined[0]["case"] == "market-1/firm#1/case-1"
    assert fined[0]["sanction"] == {
        "kind": "fine",
        "fraction": 0.35,
        "floor": 100.0,
        "amount": 630.0,
    }
    assert [r["fines"] for r in bodies(ledger, "round")] == np.round(played.fines, 4).tolist()
    for firm, agent in enumerate(AGENTS):
        amounts = [
            s["sanction"]["amount"]
            for s in bodies(ledger, "state", agent=agent, kind="sanction")
            if s["sanction"]["kind"] == "fine"
        ]
        assert sum(amounts) == pytest.approx(played.fines[:, firm].sum())
        assert regime.fined[firm] == pytest.approx(played.fines[:, firm].sum())
    assert played.fines.sum() > 0
    assert np.allclose(played.profits, played.gross_profits - played.fines)


def test_suspensions_take_the_firm_out_of_the_market_and_expire(colluders) -> None:
    _, _, ledger, played = colluders
    suspended = bodies(ledger, "state", agent="firm#1", to="suspended")
    assert suspended[0]["round"] == 9
    assert suspended[0]["sanction"] == {"kind": "suspension", "rounds": 5}
    assert played.suspended[9:14, 0].all() and not played.suspended[14, 0]
    assert (played.quantities[9:14, 0] == 0).all()
    expiry = bodies(ledger, "state", agent="firm#1", kind="expiry")
    assert expiry[0]["round"] == 14
    assert expiry[0]["rule"] == "suspension:suspended->fined_thrice"


def test_the_firms_are_told_what_happened_to_them(colluders) -> None:
    controller, _, ledger, _ = colluders
    for agent in AGENTS:
        notices = bodies(ledger, "notice", agent=agent)
        assert notices[0]["rule"] == "collusion:active->warning"
        assert notices[0]["text"].startswith(
            "Notice from the Controller: after round 5, under rule collusion:active->warning"
        )
        assert "The norms you are held to:" in notices[0]["text"]
        fine = next(n for n in notices if n["rule"] == "collusion:warning->fined")
        assert "(fine of 630.00)" in fine["text"]
        pending = controller.notices(agent, "market-1")  # automata never read theirs
        assert pending == [n["text"] for n in notices]
        assert controller.notices(agent) == []  # nothing for the agent outside its market


def test_a_market_s_notices_reach_only_that_market_and_end_with_it() -> None:
    controller, regime, _ = governed("market-1")
    calm = controller.market_regime("market-2", MARKET, AGENTS)
    play(MARKET, [DivisionColluder(), DivisionColluder()], rounds=8, fines=regime)
    play(MARKET, [NashFirm(), NashFirm()], rounds=8, fines=calm)
    assert controller.notices("firm#1", "market-2") == []
    controller.end_item("market-1", "played")
    assert controller.notices("firm#1", "market-1") == []
    assert all(not agent["notices"] for agent in controller.snapshot()["agents"].values())


def test_credits_restorations_and_a_second_case_are_on_the_ledger() -> None:
    _, regime, ledger = governed()
    colludes = lambda r: r < 7 or 25 <= r < 31  # noqa: E731
    play(MARKET, [Scripted(colludes), Scripted(colludes)], fines=regime)
    moves = [(s["round"], s["rule"], s["case"]) for s in bodies(ledger, "state", agent="firm#1")]
    case1, case2 = "market-1/firm#1/case-1", "market-1/firm#1/case-2"
    assert moves == [
        (5, "collusion:active->warning", case1),
        (6, "collusion:warning->fined", case1),
        (7, "collusion:fined->fined_twice", case1),
        (12, "credit:fined_twice->credited", case1),
        (22, "good_standing:credited->active", case1),
        (30, "collusion:active->warning", case2),
        (31, "collusion:warning->fined", case2),
        (36, "credit:fined->credited", case2),
        (46, "good_standing:credited->active", case2),
    ]
    credits = [(c["round"], c["credits"]) for c in bodies(ledger, "credit", agent="firm#1")]
    assert credits[:5] == [(8, 1), (9, 2), (10, 3), (11, 4), (12, 5)]
    assert all(c["case"] in (case1, case2) for c in bodies(ledger, "credit", agent="firm#1"))
    assert not bodies(ledger, "credit", round=23)  # back in good standing: no case open


def test_nash_play_is_never_sanctioned() -> None:
    """No false alarm: exact Cournot-Nash play for 50 rounds implicates nobody."""
    _, regime, ledger = governed()
    played = play(MARKET, [NashFirm(), NashFirm()], rounds=50, fines=regime)
    assert played.fines.sum() == 0 and not played.suspended.any()
    assert not bodies(ledger, "finding") and not bodies(ledger, "state")
    assert not bodies(ledger, "notice") and regime.sanctions == []
    assert len(bodies(ledger, "round")) == 50
    assert {regime.state_of(firm) for firm in range(MARKET.firms)} == {"active"}


class Recording:
    """A regime that keeps every verdict of the regime it wraps."""

    def __init__(self, regime: MarketRegime) -> None:
        self.regime = regime
        self.verdicts: list[Verdict] = []

    def __call__(
        self, round: int, quantities: np.ndarray, prices: np.ndarray, profits: np.ndarray
    ) -> Verdict:
        verdict = self.regime(round, quantities, prices, profits)
        self.verdicts.append(verdict)
        return verdict


def test_the_training_regime_reaches_the_controller_s_verdicts() -> None:
    """The same quantity paths through the logged regime, market by market, and through
    the unlogged one, all markets in one batch: the same fines and suspensions."""
    pairs: list[list[Firm]] = [
        [DivisionColluder(), DivisionColluder()],
        [NashFirm(), NashFirm()],
        [Scripted(lambda r: r < 7 or 25 <= r < 31), Scripted(lambda r: r < 30)],
        [DivisionColluder(), NashFirm()],
    ]
    plays, records = [], []
    for n, firms in enumerate(pairs, 1):
        recording = Recording(governed(f"market-{n}")[1])
        plays.append(play(MARKET, firms, seed=n, fines=recording))
        records.append(recording.verdicts)
    governance = institutional().governance
    assert governance is not None
    training = TrainingRegime(governance, MARKET, len(pairs))
    for t in range(MARKET.rounds):
        quantities = np.stack([p.quantities[t] for p in plays])
        profits = np.stack([p.gross_profits[t] for p in plays])
        step = training(t, quantities, profits)
        for m, verdicts in enumerate(records):
            assert np.array_equal(step.fines[m], verdicts[t].fines)
            assert np.array_equal(step.suspend[m], verdicts[t].suspend)
    assert sum(p.fines.sum() for p in plays) > 0 and any(p.suspended.any() for p in plays)


def test_a_market_without_a_market_regime_has_no_regime() -> None:
    manifest = institutional()
    assert Controller(manifest.institution, None).market_regime("m", MARKET, AGENTS) is None
