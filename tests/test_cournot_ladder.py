"""The market regime's ladder (``governance/ladder.py``) on hand-built evidence, under the
institutional manifest's own governance: the climb from a warning to fines and a
suspension, fine amounts with their floor, credits earned only in clean acting rounds,
restorations, relapse, cooldown, the order of rules, and markets in a batch that never
touch each other."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from govern.governance.ladder import NONE, LadderStep, RoundLadder
from govern.spec.checks import load_checked
from govern.spec.loader import LoadedManifest
from govern.spec.models import Governance
from govern.tasks.cournot.signals import HIGH_HHI, SPECIALISATION, SYNCHRONOUS_MOVES
from govern.tasks.cournot.tracker import SIGNAL_ORDER
from tests.conftest import ROOT

INSTITUTIONAL = ROOT / "manifests" / "cournot_institutional.yaml"
DIVISION_PROFIT = 1800.0  # a firm's profit a round under market division
FIRMS = 2


@cache
def institutional() -> Governance:
    """The governance of manifests/cournot_institutional.yaml, as the spec checks pass it."""
    loaded = load_checked(INSTITUTIONAL)
    assert isinstance(loaded, LoadedManifest) and loaded.manifest.governance is not None
    return loaded.manifest.governance


class Market:
    """One market of two firms on a ladder, stepped round by round with hand-built evidence."""

    def __init__(self, governance: Governance | None = None) -> None:
        self.ladder = RoundLadder(governance or institutional(), SIGNAL_ORDER, 1, FIRMS)
        self.t = 0

    def round(
        self,
        *implicated: int,
        profits: tuple[float, float] = (DIVISION_PROFIT, DIVISION_PROFIT),
        signal: str = HIGH_HHI,
    ) -> LadderStep:
        """Close a round in which ``signal`` implicates the firms ``implicated``."""
        evidence = np.zeros((1, len(SIGNAL_ORDER), FIRMS), dtype=bool)
        for firm in implicated:
            evidence[0, SIGNAL_ORDER.index(signal), firm] = True
        step = self.ladder.step(self.t, evidence, np.array([profits], dtype=float))
        self.t += 1
        return step

    def clean(self, rounds: int) -> list[LadderStep]:
        return [self.round() for _ in range(rounds)]

    def state(self, firm: int = 0) -> str:
        return self.ladder.names(self.ladder.state[0, firm])[0]

    def credits(self, firm: int = 0) -> int:
        return int(self.ladder.credits[0, firm])

    def fired(self, step: LadderStep, firm: int = 0) -> str | None:
        index = int(step.fired[0, firm])
        return None if index == NONE else self.ladder.rule(index)[0]

    def restored(self, step: LadderStep, firm: int = 0) -> str | None:
        index = int(step.restored[0, firm])
        return None if index == NONE else self.ladder.restoration(index)[0]

    def climb_to(self, state: str) -> None:
        """Implicate firm 0 round after round until it stands in ``state``."""
        for _ in range(len(self.ladder.states)):
            if self.state() == state:
                return
            self.round(0)
        raise AssertionError(f"firm 0 never reached {state}; it is {self.state()}")


def test_the_full_climb_a_step_a_round_then_back_from_suspension() -> None:
    market = Market()
    climb = [
        # (profit this round, rule that fires, state after, fine)
        (1800.0, "collusion:active->warning", "warning", 0.0),
        (1800.0, "collusion:warning->fined", "fined", 0.35 * 1800),
        (1000.0, "collusion:fined->fined_twice", "fined_twice", 0.75 * 1000),
        (-250.0, "collusion:fined_twice->fined_thrice", "fined_thrice", 100.0),  # the floor
        (1800.0, "collusion:fined_thrice->suspended", "suspended", 0.0),
    ]
    for profit, rule, state, fine in climb:
        step = market.round(0, profits=(profit, 1800.0))
        assert (market.fired(step), market.state(), market.state(1)) == (rule, state, "active")
        assert step.fines[0].tolist() == pytest.approx([fine, 0.0])
        assert step.found[0].tolist() == [True, False]
    assert step.suspend[0].tolist() == [5, 0]
    suspended = [market.round(0) for _ in range(5)]  # evidence in suspension changes nothing
    assert [market.fired(s) for s in suspended] == [None] * 5
    assert [bool(s.expired[0, 0]) for s in suspended] == [False] * 4 + [True]
    assert all(s.fines[0, 0] == 0 and s.suspend[0, 0] == 0 for s in suspended)
    assert market.state() == "fined_thrice"  # back in the state it was suspended from
    step = market.round(0)
    assert market.fired(step) == "collusion:fined_thrice->suspended"
    assert market.state() == "suspended" and step.suspend[0, 0] == 5


@pytest.mark.parametrize(
    ("profit", "expected"),
    [(1800.0, 630.0), (1000.0, 350.0), (200.0, 100.0), (0.0, 100.0), (-700.0, 100.0)],
)
def test_a_fine_takes_its_share_of_positive_profit_at_least_the_floor(
    profit: float, expected: float
) -> None:
    market = Market()
    market.climb_to("warning")
    step = market.round(0, 1, profits=(profit, profit))  # firm 1 is only warned
    assert step.fines[0].tolist() == pytest.approx([expected, 0.0])
    rule = institutional().rules[int(step.fired[0, 0])]
    assert rule.sanction is not None and rule.sanction.fine(profit) == pytest.approx(expected)


def test_credits_are_earned_in_clean_acting_rounds_and_cleared_by_a_sanction() -> None:
    market = Market()
    market.clean(3)
    assert market.credits() == 3  # banked while active ...
    market.climb_to("fined")
    assert market.credits() == 0  # ... and gone with the first sanction
    steps = market.clean(3)
    assert [bool(s.credited[0, 0]) for s in steps] == [True] * 3 and market.credits() == 3
    step = market.round(0)  # implicated: no credit, and the fine clears the three
    assert not step.credited[0, 0] and market.state() == "fined_twice"
    assert market.credits() == 0
    steps = market.clean(5)
    assert [market.restored(s) for s in steps] == [None] * 4 + ["credit:fined_twice->credited"]
    assert market.state() == "credited" and market.credits() == 0  # the five were spent


def test_a_suspended_firm_earns_no_credit() -> None:
    market = Market()
    market.climb_to("suspended")
    steps = market.clean(5)  # clean, but serving its suspension
    assert [bool(s.credited[0, 0]) for s in steps] == [False] * 5
    assert market.credits() == 0 and market.state() == "fined_thrice"
    steps = market.clean(5)
    assert [bool(s.credited[0, 0]) for s in steps] == [True] * 5
    assert market.restored(steps[-1]) == "credit:fined_thrice->credited"


def test_a_warning_lapses_after_ten_clean_rounds() -> None:
    market = Market()
    market.climb_to("warning")
    steps = market.clean(10)
    assert market.state() == "active"
    assert [market.restored(s) for s in steps] == [None] * 9 + ["good_standing:warning->active"]


def test_a_credited_firm_is_active_again_after_ten_clean_rounds() -> None:
    market = Market()
    market.climb_to("fined")
    market.clean(5)
    assert market.state() == "credited"
    steps = market.clean(10)
    assert [market.restored(s) for s in steps] == [None] * 9 + ["good_standing:credited->active"]
    assert market.state() == "active"


def test_a_credited_firm_that_colludes_again_relapses_to_a_fine() -> None:
    market = Market()
    market.climb_to("fined")
    market.clean(5)
    market.clean(4)  # credited, not yet back in good standing
    step = market.round(0, profits=(1500.0, 1500.0))
    assert market.fired(step) == "relapse:credited->fined" and market.state() == "fined"
    assert step.fines[0, 0] == pytest.approx(0.35 * 1500)


def test_evidence_against_one_firm_moves_that_firm_only() -> None:
    market = Market()
    market.round(1, signal=SPECIALISATION)
    assert (market.state(0), market.state(1)) == ("active", "warning")
    assert (market.credits(0), market.credits(1)) == (1, 0)


def overlay(rules: list[dict], restorations: list[dict] | None = None) -> Governance:
    return Governance.model_validate(
        {
            "states": ["active", "warned", "fined"],
            "initial": "active",
            "acting": ["active", "warned", "fined"],
            "rules": rules,
            "restorations": restorations or [],
        }
    )


def rule(source: str, target: str, *signals: str, **more: object) -> dict:
    return {
        "name": "r",
        "from": source,
        "to": target,
        "evidence": {"any_of": list(signals)},
        **more,
    }


def test_a_cooldown_holds_a_rule_back_for_its_rounds() -> None:
    fine = {"kind": "fine", "fraction": 0.1}
    market = Market(overlay([rule("active", "active", HIGH_HHI, sanction=fine, cooldown=3)]))
    fines = [float(market.round(0, profits=(1000.0, 0.0)).fines[0, 0]) for _ in range(7)]
    assert fines == pytest.approx([100.0, 0, 0, 100.0, 0, 0, 100.0])


def test_the_first_rule_written_that_holds_fires() -> None:
    rules = [
        rule("active", "fined", SPECIALISATION),
        rule("active", "warned", HIGH_HHI, SPECIALISATION),
    ]
    both = Market(overlay(rules))
    both.round(0, signal=SPECIALISATION)  # both rules hold: the first written fires
    assert both.state() == "fined"
    second = Market(overlay(rules))
    second.round(0, signal=HIGH_HHI)  # only the second holds
    assert second.state() == "warned"
    reversed_order = Market(overlay(rules[::-1]))
    reversed_order.round(0, signal=SPECIALISATION)
    assert reversed_order.state() == "warned"


def test_one_step_of_the_ladder_a_round_whatever_the_order_of_the_rules() -> None:
    up = [rule("active", "warned", HIGH_HHI), rule("warned", "fined", HIGH_HHI)]
    for rules in (up, up[::-1]):
        market = Market(overlay(rules))
        market.round(0)
        assert market.state() == "warned"
        market.round(0)
        assert market.state() == "fined"


def test_a_restoration_waits_for_a_round_no_rule_moved_the_firm_in() -> None:
    ways = [{"name": "back", "from": "warned", "to": "active", "credits": 1}]
    market = Market(overlay([rule("active", "warned", SYNCHRONOUS_MOVES)], ways))
    market.clean(4)  # four credits banked while active
    step = market.round(0, signal=SYNCHRONOUS_MOVES)
    assert market.state() == "warned" and market.restored(step) is None  # cleared, not spent
    step = market.round()
    assert market.restored(step) == "back:warned->active"


COOLING = overlay(
    [
        rule("active", "warned", HIGH_HHI, SYNCHRONOUS_MOVES, sanction={"kind": "warning"}),
        rule("warned", "fined", SPECIALISATION, sanction={"kind": "fine", "fraction": 0.5}),
        rule("fined", "fined", HIGH_HHI, sanction={"kind": "fine", "fraction": 0.2}, cooldown=2),
    ],
    [
        {"name": "lapse", "from": "warned", "to": "active", "clean_rounds": 3},
        {"name": "credit", "from": "fined", "to": "warned", "credits": 2},
    ],
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[Governance, np.ndarray, np.ndarray]:
    """A governance, and for every round of a few markets which signal (if any) implicates
    each firm -- a firm is clean in three rounds of four -- and the firms' profits."""
    governance = draw(st.sampled_from([institutional(), COOLING]))
    markets = draw(st.integers(1, 4))
    rounds = draw(st.integers(1, 60))
    which = draw(arrays(np.int8, (rounds, markets, FIRMS), elements=st.integers(0, 15)))
    evidence = np.zeros((rounds, markets, len(SIGNAL_ORDER), FIRMS), dtype=bool)
    for row in range(len(SIGNAL_ORDER)):
        evidence[:, :, row, :] = which == row
    profits = draw(
        arrays(float, (rounds, markets, FIRMS), elements=st.floats(-1000, 3000, width=32))
    )
    return governance, evidence, profits


@settings(max_examples=80, deadline=None)
@given(histories())
def test_markets_in_a_batch_move_as_each_would_alone(
    history: tuple[Governance, np.ndarray, np.ndarray],
) -> None:
    governance, evidence, profits = history
    rounds, markets = evidence.shape[:2]
    batch = RoundLadder(governance, SIGNAL_ORDER, markets, FIRMS)
    alone = [RoundLadder(governance, SIGNAL_ORDER, 1, FIRMS) for _ in range(markets)]
    for t in range(rounds):
        together = batch.step(t, evidence[t], profits[t])
        for m, ladder in enumerate(alone):
            single = ladder.step(t, evidence[t, m : m + 1], profits[t, m : m + 1])
            for field in LadderStep.__dataclass_fields__:
                assert np.array_equal(getattr(together, field)[m], getattr(single, field)[0])
    for m, ladder in enumerate(alone):
        assert np.array_equal(batch.state[m], ladder.state[0])
        assert np.array_equal(batch.credits[m], ladder.credits[0])
