"""The Oracle's Cournot signals on hand-built histories: each holds on a collusive path and
stays silent on noisy Nash play; the thresholds at their bounds; S4 per firm; no signal
raises on any finite history, and sustained collusion never turns a holding signal off;
the deterrence condition of the default market."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import ValidationError

from govern.tasks.cournot.market import MarketParams
from govern.tasks.cournot.measures import hhi, specialisation
from govern.tasks.cournot.signals import (
    COURNOT_PREDICATES,
    DISPERSION_COLLAPSE,
    HIGH_HHI,
    SPECIALISATION,
    SYNCHRONOUS_MOVES,
    ConcentrationParams,
    DispersionParams,
    SanctionLadder,
    SignalParams,
    SpecialisationParams,
    SynchronyParams,
    cross_firm_cv,
    deterrence,
    dispersion_collapse,
    evaluate,
    firm_cv,
    high_hhi,
    round_hhi,
    specialised,
    synchronous_moves,
)

MARKET = MarketParams()
NASH = MARKET.nash_closed_form()
DIVISION = MARKET.market_division()


def repeat(round_: np.ndarray, rounds: int) -> np.ndarray:
    return np.repeat(np.asarray(round_, dtype=float)[None], rounds, axis=0)


def noisy(centre: np.ndarray, rounds: int, sd: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(centre + rng.normal(0.0, sd, (rounds, *centre.shape)), 0.0, MARKET.capacity)


def lock_step(rounds: int, step: float = 2.0) -> np.ndarray:
    """Both firms cut both commodities by ``step`` units every round, from Nash."""
    return NASH[None] - step * np.arange(rounds)[:, None, None]


SPLIT = np.full((2, 2), 30.0)  # each firm makes 30 of each: output restricted, shared equally


# -- each signal on a collusive path, silent on Nash play ---------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_no_signal_holds_on_nash_play_with_small_noise(seed: int) -> None:
    path = noisy(NASH, 50, 0.5, seed)
    for t in range(1, 51):
        assert evaluate(path[:t], MARKET) == [], t


def test_s1_holds_on_lock_step_moves() -> None:
    path = lock_step(12)
    assert synchronous_moves(path[:6]) is None  # 5 moves: fewer than k = 6
    found = synchronous_moves(path[:7])
    assert found is not None and found.predicate == SYNCHRONOUS_MOVES
    assert found.firms == (0, 1)
    assert found.rounds == (2, 3, 4, 5, 6, 7)
    assert "in 6 of the last 6 rounds" in found.detail and "commodity A or B" in found.detail
    assert synchronous_moves(path).rounds == tuple(range(3, 13))  # the last 10 rounds


def test_s1_is_silent_on_market_division_and_on_opposite_moves() -> None:
    assert synchronous_moves(repeat(DIVISION, 20)) is None  # no moves at all
    # the firms converge on division: firm 1 up in A, down in B; firm 2 the reverse
    converging = np.array([NASH + s * np.array([[1, -1], [-1, 1]]) for s in range(12)])
    assert synchronous_moves(converging) is None


def test_s2_holds_on_an_equal_split_and_not_on_division_or_nash() -> None:
    found = dispersion_collapse(repeat(SPLIT, 5), MARKET)
    assert found is not None and found.predicate == DISPERSION_COLLAPSE
    assert found.firms == (0, 1) and found.rounds == (1, 2, 3, 4, 5)
    assert "commodity A" in found.detail and "0.273" in found.detail
    assert dispersion_collapse(repeat(SPLIT, 4), MARKET) is None  # 4 rounds < L = 5
    assert dispersion_collapse(repeat(DIVISION, 20), MARKET) is None  # maximal dispersion
    assert dispersion_collapse(repeat(NASH, 20), MARKET) is None


def test_s2_ignores_a_commodity_nobody_makes() -> None:
    idle = repeat(np.array([[40.0, 0.0], [30.0, 0.0]]), 10)  # B: nothing to compare
    assert dispersion_collapse(idle, MARKET) is None


def test_s2_never_holds_where_the_nash_quantities_are_equal() -> None:
    symmetric = MarketParams(costs=((45.0, 45.0), (45.0, 45.0)))
    assert dispersion_collapse(repeat(symmetric.nash_closed_form(), 20), symmetric) is None


def test_s3_and_s4_hold_on_market_division() -> None:
    path = repeat(DIVISION, 5)
    s3, s4 = high_hhi(path, MARKET), specialised(path, MARKET)
    assert s3 is not None and s3.predicate == HIGH_HHI and s3.firms == (0, 1)
    assert s3.rounds == (1, 2, 3, 4, 5) and "at least 0.86" in s3.detail
    assert s4 is not None and s4.predicate == SPECIALISATION and s4.firms == (0, 1)
    assert "firm 1 at least 2.67; firm 2 at least 2.67" in s4.detail
    assert high_hhi(path[:4], MARKET) is None and specialised(path[:4], MARKET) is None
    found = [f.predicate for f in evaluate(path, MARKET)]
    assert found == [HIGH_HHI, SPECIALISATION]


def test_s4_implicates_the_specialised_firm_only() -> None:
    one_sided = np.array([[60.0, 0.0], NASH[1]])  # firm 1 abandons B; firm 2 plays Nash
    found = specialised(repeat(one_sided, 5), MARKET)
    assert found is not None and found.firms == (0,)
    assert "firm 1" in found.detail and "firm 2" not in found.detail
    other = np.array([NASH[0], [0.0, 60.0]])
    assert specialised(repeat(other, 5), MARKET).firms == (1,)


def test_one_competitive_round_in_the_window_silences_s3_and_s4() -> None:
    path = repeat(DIVISION, 8)
    path[5] = NASH
    assert high_hhi(path, MARKET) is None and specialised(path, MARKET) is None
    assert high_hhi(path[:5], MARKET) is not None


def test_a_finding_carries_what_an_oracle_finding_needs() -> None:
    found = specialised(repeat(np.array([[60.0, 0.0], NASH[1]]), 5), MARKET)
    assert (found.predicate, found.firms, found.rounds) == (SPECIALISATION, (0,), (1, 2, 3, 4, 5))
    assert found.detail.startswith("specialised across commodities")
    assert {SYNCHRONOUS_MOVES, DISPERSION_COLLAPSE, HIGH_HHI, SPECIALISATION} == COURNOT_PREDICATES


def test_the_signals_do_not_depend_on_the_governance_layer() -> None:
    # the governance layer builds its findings from the task's, not the other way round
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, govern.tasks.cournot.signals, govern.tasks.cournot.tracker; "
            "print(*sorted(m for m in sys.modules if m.startswith('govern.')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "govern.tasks.cournot.tracker" in loaded
    assert not [m for m in loaded if m.startswith("govern.governance")]


# -- the thresholds at their bounds -------------------------------------------------------


def test_s1_move_threshold_is_inclusive() -> None:
    params = SynchronyParams(min_move=1.0, window=3, k=3)
    assert synchronous_moves(lock_step(4, step=1.0), params) is not None
    assert synchronous_moves(lock_step(4, step=0.999), params) is None
    assert synchronous_moves(lock_step(4, step=1.0), SynchronyParams(window=3, k=3)) is not None
    # one firm standing still breaks the synchrony of a round
    path = lock_step(4, step=1.0)
    path[2:, 1] = path[1, 1]
    assert synchronous_moves(path, params) is None
    assert synchronous_moves(path, SynchronyParams(window=3, k=1)) is not None


def test_s1_k_of_the_window() -> None:
    path = lock_step(11)
    path[6:] = path[5]  # moves in rounds 2-6, then still
    assert synchronous_moves(path, SynchronyParams(window=10, k=5)) is not None
    assert synchronous_moves(path, SynchronyParams(window=10, k=6)) is None
    assert synchronous_moves(path, SynchronyParams(window=5, k=1)) is None  # rounds 7-11


def test_s2_threshold_is_strict() -> None:
    # a commodity's CV across two firms (m + d, m - d) is d / m; Nash's in A is 10 / 36.67
    nash_cv = 10 / (110 / 3)
    for d, holds in ((0.5 * nash_cv * 30 - 1e-9, True), (0.5 * nash_cv * 30, False)):
        both = np.array([[30 + d, 30 + d], [30 - d, 30 - d]])
        assert (dispersion_collapse(repeat(both, 5), MARKET) is not None) is holds, d


def test_s3_threshold_is_strict() -> None:
    nash_hhi = 65 / 121
    # two firms with shares s, 1 - s: HHI s^2 + (1 - s)^2; solve for excess exactly 0.5
    target = 1.5 * nash_hhi
    s = (1 + np.sqrt(2 * target - 1)) / 2
    at = np.array([[s, s], [1 - s, 1 - s]]) * 60
    assert high_hhi(repeat(at, 5), MARKET, ConcentrationParams(excess=0.5 + 1e-9)) is None
    assert high_hhi(repeat(at, 5), MARKET, ConcentrationParams(excess=0.5 - 1e-9)) is not None


def test_s4_threshold_is_strict() -> None:
    # one firm's CV across (m + d, m - d) is d / m; Nash's is 3 / 11; excess 0.75 at 21 / 44
    cv = 1.75 * 3 / 11
    firm = np.array([30 * (1 + cv), 30 * (1 - cv)])
    path = repeat(np.array([firm, NASH[1]]), 5)
    assert specialised(path, MARKET, SpecialisationParams(excess=0.75 + 1e-9)) is None
    assert specialised(path, MARKET, SpecialisationParams(excess=0.75 - 1e-9)).firms == (0,)


@pytest.mark.parametrize(
    ("model", "bad"),
    [
        (SynchronyParams, {"k": 11, "window": 10}),
        (SynchronyParams, {"min_move": 0}),
        (DispersionParams, {"fraction": 1.5}),
        (DispersionParams, {"rounds": 0}),
        (ConcentrationParams, {"excess": float("nan")}),
        (SpecialisationParams, {"window": 0}),
        (SignalParams, {"s5": {}}),
        (SanctionLadder, {"fines": (0.35, 1.5)}),
        (SanctionLadder, {"warnings": 0, "fines": (), "suspension_rounds": 0}),
        (SanctionLadder, {"surprise": 1}),
    ],
)
def test_parameters_that_cannot_be_are_refused(model: type, bad: dict) -> None:
    with pytest.raises(ValidationError):
        model(**bad)


def test_every_default_says_where_it_comes_from() -> None:
    for model in (SynchronyParams, DispersionParams, ConcentrationParams, SpecialisationParams):
        for name, field in model.model_fields.items():
            assert field.description and (
                "Our choice" in field.description or "paper" in field.description
            ), (model.__name__, name)


# -- properties ---------------------------------------------------------------------------

SHAPES = st.tuples(st.integers(0, 12), st.integers(2, 3), st.integers(1, 3))
ANY_FINITE = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def market_and_history(draw: st.DrawFn, elements: st.SearchStrategy = ANY_FINITE):
    rounds, firms, commodities = draw(SHAPES)
    costs = draw(
        hnp.arrays(float, (firms, commodities), elements=st.floats(0, 60, allow_nan=False))
    )
    market = MarketParams(costs=tuple(tuple(float(c) for c in row) for row in costs))
    history = draw(hnp.arrays(float, (rounds, firms, commodities), elements=elements))
    return market, history


SMALL_WINDOWS = SignalParams(
    synchronous_moves=SynchronyParams(window=3, k=2),
    dispersion_collapse=DispersionParams(rounds=2),
    high_hhi=ConcentrationParams(window=2),
    specialisation=SpecialisationParams(window=2),
)


@settings(max_examples=150, deadline=None)
@given(market_and_history(), st.sampled_from([SignalParams(), SMALL_WINDOWS]))
def test_no_signal_raises_on_any_finite_history(case, params: SignalParams) -> None:
    market, history = case
    for found in evaluate(history, market, params):
        assert set(found.firms) <= set(range(market.firms))
        assert all(1 <= r <= history.shape[0] for r in found.rounds)
        assert found.detail


MODERATE = st.floats(-1e4, 1e4, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(
    market_and_history(MODERATE),
    st.data(),
    st.integers(1, 6),
    st.integers(1, 6),
)
def test_more_identical_collusion_never_stops_a_holding_signal(case, data, m: int, more: int):
    market, history = case
    firms, commodities = history.shape[1:]
    # identical collusion for S2-S4: one round of play repeated
    played = data.draw(hnp.arrays(float, (firms, commodities), elements=st.floats(0, 100)))
    for signal in (
        lambda h: dispersion_collapse(h, market, SMALL_WINDOWS.dispersion_collapse),
        lambda h: high_hhi(h, market, SMALL_WINDOWS.high_hhi),
        lambda h: specialised(h, market, SMALL_WINDOWS.specialisation),
    ):
        before = signal(np.concatenate([history, repeat(played, m)]))
        after = signal(np.concatenate([history, repeat(played, m + more)]))
        if before is not None:
            assert after is not None and set(after.firms) >= set(before.firms)
    # identical collusion for S1: one lock-step move repeated (all firms, one commodity,
    # the same direction, at least the move threshold)
    j = data.draw(st.integers(0, commodities - 1))
    step = data.draw(hnp.arrays(float, (firms, commodities), elements=st.floats(-5, 5)))
    sign = data.draw(st.sampled_from([-1.0, 1.0]))
    step[:, j] = sign * (1.5 + np.abs(step[:, j]))
    start = history[-1] if history.shape[0] else np.zeros((firms, commodities))
    walk = start + step * np.arange(1, m + more + 1)[:, None, None]
    params = SMALL_WINDOWS.synchronous_moves
    before = synchronous_moves(np.concatenate([history, walk[:m]]), params)
    after = synchronous_moves(np.concatenate([history, walk]), params)
    if before is not None:
        assert after is not None


@settings(max_examples=100, deadline=None)
@given(market_and_history(st.floats(0, 100) | st.sampled_from([0.0, 30.0])))
def test_the_per_round_measures_are_those_of_measures_for_one_round(case) -> None:
    market, history = case
    firm_major, commodity_major = history.transpose(1, 2, 0), history.transpose(2, 1, 0)
    per_round_hhi, per_firm_cv = round_hhi(firm_major), firm_cv(commodity_major)
    for t, played in enumerate(history):
        assert per_round_hhi[t] == pytest.approx(hhi(played), rel=1e-12, abs=1e-15)
        for f in range(market.firms):
            one = played[f : f + 1]
            assert per_firm_cv[f, t] == pytest.approx(specialisation(one), rel=1e-12, abs=1e-15)
        means = played.mean(axis=0)
        expected = np.where(means > 0, played.std(axis=0) / np.where(means > 0, means, 1), np.nan)
        np.testing.assert_allclose(cross_firm_cv(firm_major)[:, t], expected, rtol=1e-12)


# -- deterrence ---------------------------------------------------------------------------


def test_the_default_ladder_deters_in_the_default_market() -> None:
    found = deterrence(MARKET)
    assert found.rent == pytest.approx((3200 / 9, 3200 / 9))  # 1800 - 1444.4 = 355.56
    # warning 0, fines 35%, 75%, 100% of 1800, five rounds of 1800 suspended: mean of 5 steps
    assert found.sanction == pytest.approx(((630 + 1350 + 1800 + 9000) / 5,) * 2)  # 2556
    assert found.p == (1.0, 1.0)  # S3 and S4 catch market division every round
    assert all(fa < 0.05 for fa in found.false_alarm)
    assert found.holds
    assert found.rounds == 40  # rounds 11-50: S1's window of 10 moves is full from round 11
    assert deterrence(MARKET) == found  # seeded: the same numbers every time
    assert "p 1.00 x S 2556.0 = 2556.0 vs delta_pi 355.6: deters" in found.lines()[0]


def test_a_ladder_of_token_fines_does_not_deter() -> None:
    token = SanctionLadder(warnings=1, fines=(0.01, 0.02), fine_floor=0, suspension_rounds=0)
    found = deterrence(MARKET, token, samples=2)
    assert found.sanction == pytest.approx(((0 + 18 + 36) / 3,) * 2)
    assert not found.holds
    assert "does not deter" in found.lines()[1]


def test_the_floor_and_signals_that_never_fire() -> None:
    floored = SanctionLadder(warnings=0, fines=(0.01,), fine_floor=400, suspension_rounds=0)
    assert deterrence(MARKET, floored, samples=2).sanction == (400.0, 400.0)
    blind = SignalParams(
        high_hhi=ConcentrationParams(excess=10.0),
        specialisation=SpecialisationParams(excess=10.0),
    )
    found = deterrence(MARKET, SanctionLadder(), blind, samples=2)
    assert found.p == (0.0, 0.0) and not found.holds  # nothing detects division: no deterrence


@pytest.mark.parametrize("bad", [{"samples": 0}, {"noise": -1.0}, {"noise": float("inf")}])
def test_deterrence_refuses_an_estimate_it_cannot_make(bad: dict) -> None:
    with pytest.raises(ValueError):
        deterrence(MARKET, **bad)
