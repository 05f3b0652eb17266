"""The incremental tracker says, round by round and session by session, exactly what the
signals of ``signals`` say of each session's whole history so far: on random histories
(zeros, equal quantities, moves a hair either side of ``min_move``, any finite value), on
markets whose Nash benchmark is 0, and with thresholds taken from the history itself so
that rounds sit exactly on them; a snapshot resumes a run where it stopped."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import ValidationError

from govern.tasks.cournot.market import MarketParams
from govern.tasks.cournot.signals import (
    COURNOT_PREDICATES,
    ConcentrationParams,
    DispersionParams,
    SignalParams,
    SpecialisationParams,
    SynchronyParams,
    cross_firm_cv,
    dispersion_collapse,
    firm_cv,
    high_hhi,
    nash_benchmarks,
    relative_excess,
    round_hhi,
    specialised,
    synchronous_moves,
)
from govern.tasks.cournot.tracker import SIGNAL_ORDER, SignalTracker

MARKET = MarketParams()
NASH = MARKET.nash_closed_form()


def implicated(history: np.ndarray, market: MarketParams, params: SignalParams) -> np.ndarray:
    """What the signals say of one history: (signals, firms) in SIGNAL_ORDER."""
    found = (
        synchronous_moves(history, params.synchronous_moves),
        dispersion_collapse(history, market, params.dispersion_collapse),
        high_hhi(history, market, params.high_hhi),
        specialised(history, market, params.specialisation),
    )
    flags = np.zeros((len(found), market.firms), dtype=bool)
    for row, finding in enumerate(found):
        if finding is not None:
            flags[row, list(finding.firms)] = True
    return flags


def assert_tracks(histories: np.ndarray, market: MarketParams, params: SignalParams) -> None:
    """Feed (sessions, rounds, firms, commodities) round by round; compare every prefix."""
    tracker = SignalTracker(market, params, histories.shape[0])
    for t in range(histories.shape[1]):
        flags = tracker.update(histories[:, t])
        assert flags.shape == (histories.shape[0], len(SIGNAL_ORDER), market.firms)
        for s, history in enumerate(histories):
            expected = implicated(history[: t + 1], market, params)
            assert (flags[s] == expected).all(), (t + 1, s, flags[s], expected)


# -- strategies ---------------------------------------------------------------------------

COST = st.sampled_from([0.0, 20.0, 40.0, 45.0, 50.0]) | st.floats(0, 99, allow_nan=False)


@st.composite
def markets(draw: st.DrawFn) -> MarketParams:
    firms, commodities = draw(st.integers(2, 3)), draw(st.integers(1, 3))
    if draw(st.booleans()):  # each firm's costs alike across commodities: Nash firm CV 0
        rows = [[draw(COST)] * commodities for _ in range(firms)]
    else:
        rows = [[draw(COST) for _ in range(commodities)] for _ in range(firms)]
    return MarketParams(costs=tuple(tuple(row) for row in rows))


def near(value: float) -> list[float]:
    """A value and its floating-point neighbours."""
    return [np.nextafter(value, -np.inf), value, np.nextafter(value, np.inf)]


@st.composite
def histories(draw: st.DrawFn, market: MarketParams, min_move: float) -> np.ndarray:
    """(sessions, rounds, firms, commodities): free values, a few rounds repeated, or
    lock-step walks whose moves sit on ``min_move``."""
    sessions, rounds = draw(st.integers(1, 4)), draw(st.integers(0, 25))
    shape = (sessions, rounds, market.firms, market.commodities)
    kind = draw(st.sampled_from(["values", "repeated", "lock_step"]))
    if kind == "values":
        special = [0.0, 1.0, *near(30.0), 60.0, -1.0, 5e-324, 1e-300, *near(min_move), 2 * min_move]
        elements = (
            st.sampled_from(special)
            | st.floats(0, 100, allow_nan=False)
            | st.floats(allow_nan=False, allow_infinity=False)
        )
        return draw(hnp.arrays(float, shape, elements=elements))
    if kind == "repeated":
        templates = draw(
            hnp.arrays(
                float,
                (3, market.firms, market.commodities),
                elements=st.sampled_from([0.0, 10.0, 30.0, 60.0]) | st.floats(0, 100),
            )
        )
        which = draw(hnp.arrays(np.int64, (sessions, rounds), elements=st.integers(0, 2)))
        return templates[which]
    # lock-step: from a start, every firm moves each commodity by a step near min_move in
    # one direction per commodity and round, or stands still
    start = draw(hnp.arrays(float, shape[:1] + shape[2:], elements=st.integers(0, 50).map(float)))
    sizes = draw(hnp.arrays(float, shape, elements=st.sampled_from([*near(min_move), 0.0])))
    sides = draw(
        hnp.arrays(
            float, (sessions, rounds, 1, market.commodities), elements=st.sampled_from([-1.0, 1.0])
        )
    )
    return start[:, None] + np.cumsum(sizes * sides, axis=1)


def on_the_history(draw: st.DrawFn, free: st.SearchStrategy[float], seen: np.ndarray) -> float:
    """A threshold: free, or one of the values the history shows, so rounds sit on it."""
    seen = seen[np.isfinite(seen)]
    if seen.size and draw(st.booleans()):
        return float(draw(st.sampled_from(sorted(set(seen.ravel().tolist())))))
    return draw(free)


@st.composite
def cases(draw: st.DrawFn) -> tuple[MarketParams, SignalParams, np.ndarray]:
    market = draw(markets())
    min_move = draw(st.sampled_from([1.0, 0.5, 2.0]) | st.floats(1e-6, 10))
    history = draw(histories(market, min_move))
    window = draw(st.integers(1, 6))
    flat = history.reshape(-1, market.firms, market.commodities)  # every round of every session
    firm_major, commodity_major = flat.transpose(1, 2, 0), flat.transpose(2, 1, 0)
    nash_cv, nash_hhi, nash_firm_cv = nash_benchmarks(market)
    with np.errstate(all="ignore"):
        moves = np.abs(np.diff(history, axis=1)).ravel()
        fractions = cross_firm_cv(firm_major) / nash_cv[:, None]
        hhi_excess = relative_excess(round_hhi(firm_major), nash_hhi)
        cv_excess = relative_excess(firm_cv(commodity_major), nash_firm_cv)
    min_move = on_the_history(draw, st.just(min_move), moves[moves > 0])
    params = SignalParams(
        synchronous_moves=SynchronyParams(
            min_move=min_move, window=window, k=draw(st.integers(1, window))
        ),
        dispersion_collapse=DispersionParams(
            fraction=on_the_history(
                draw, st.floats(0.01, 1), fractions[(fractions > 0) & (fractions <= 1)]
            ),
            rounds=draw(st.integers(1, 5)),
        ),
        high_hhi=ConcentrationParams(
            excess=on_the_history(draw, st.floats(0, 3), hhi_excess[hhi_excess >= 0]),
            window=draw(st.integers(1, 5)),
        ),
        specialisation=SpecialisationParams(
            excess=on_the_history(draw, st.floats(0, 4), cv_excess[cv_excess >= 0]),
            window=draw(st.integers(1, 5)),
        ),
    )
    return market, params, history


# -- the tracker says what the signals say ------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(cases())
def test_the_tracker_says_what_the_signals_say_at_every_round(case) -> None:
    market, params, history = case
    assert_tracks(history, market, params)


def test_signal_order_is_s1_to_s4() -> None:
    assert set(SIGNAL_ORDER) == COURNOT_PREDICATES and len(SIGNAL_ORDER) == 4
    assert SIGNAL_ORDER[0] == "cournot_synchronous_moves"


def test_collusion_paths_of_the_default_market() -> None:
    division, split = MARKET.market_division(), np.full((2, 2), 30.0)
    lock_step = NASH[None] - 2.0 * np.arange(12)[:, None, None]
    rng = np.random.default_rng(0)
    noisy_nash = np.clip(NASH + rng.normal(0.0, 0.5, (12, 2, 2)), 0.0, 100.0)
    histories = np.stack(
        [
            np.repeat(division[None], 12, axis=0),
            np.repeat(split[None], 12, axis=0),
            lock_step,
            noisy_nash,
        ]
    )
    assert_tracks(histories, MARKET, SignalParams())
    final = SignalTracker(MARKET, SignalParams(), 4)
    for t in range(12):
        flags = final.update(histories[:, t])
    # division: S3, S4; equal split: S2; lock-step: S1; noisy Nash: nothing
    assert flags.any(axis=2).tolist() == [
        [False, False, True, True],
        [False, True, False, False],
        [True, False, False, False],
        [False, False, False, False],
    ]


@pytest.mark.parametrize(("moves", "holds"), [(3, True), (2, False)])
def test_s1_with_exactly_k_synchronous_rounds(moves: int, holds: bool) -> None:
    params = SignalParams(synchronous_moves=SynchronyParams(min_move=1.0, window=4, k=3))
    # every firm cuts every commodity by exactly min_move for `moves` rounds, then holds
    path = 30.0 - np.minimum(np.arange(9), moves)[:, None, None] * np.ones((2, 2))
    assert_tracks(path[None], MARKET, params)
    tracker = SignalTracker(MARKET, params, 1)
    said = [bool(tracker.update(path[None, t])[0, 0].all()) for t in range(len(path))]
    assert said[moves] is holds  # round moves + 1: `moves` synchronous rounds so far
    assert not said[moves + 4]  # four still rounds later, none is left in the window


def test_a_round_exactly_on_the_hhi_and_cv_bounds_is_not_above_them() -> None:
    one_sided = np.array([[60.0, 0.0], NASH[1]])  # firm 1 specialised, firm 2 at Nash
    _, nash_hhi, nash_firm_cv = nash_benchmarks(MARKET)
    q = one_sided[:, :, None]
    hhi_at = float(relative_excess(round_hhi(q), nash_hhi)[0])
    cv_at = float(relative_excess(firm_cv(q.transpose(1, 0, 2)), nash_firm_cv)[0, 0])
    path = np.repeat(one_sided[None, None], 6, axis=1)
    for hhi_bound, cv_bound, expect in (
        (hhi_at, cv_at, False),
        (np.nextafter(hhi_at, -np.inf), np.nextafter(cv_at, -np.inf), True),
    ):
        params = SignalParams(
            high_hhi=ConcentrationParams(excess=hhi_bound),
            specialisation=SpecialisationParams(excess=cv_bound),
        )
        assert_tracks(path, MARKET, params)
        tracker = SignalTracker(MARKET, params, 1)
        for t in range(6):
            flags = tracker.update(path[:, t])
        assert bool(flags[0, 2].all()) is expect and bool(flags[0, 3, 0]) is expect


def test_a_hair_of_specialisation_is_none_against_a_zero_benchmark() -> None:
    # costs alike across commodities: every Nash firm makes equal amounts, CV 0; a CV of
    # 1e-16 is not in excess of it (signals.relative_excess: within rounding)
    symmetric = MarketParams(costs=((45.0, 45.0), (40.0, 40.0)))
    assert nash_benchmarks(symmetric)[2] == 0.0
    hair = np.array([[30.0, np.nextafter(30.0, np.inf)], [20.0, 60.0]])
    path = np.repeat(hair[None, None], 6, axis=1)
    params = SignalParams(specialisation=SpecialisationParams(excess=0.0, window=2))
    assert_tracks(path, symmetric, params)
    tracker = SignalTracker(symmetric, params, 1)
    for t in range(6):
        flags = tracker.update(path[:, t])
    assert flags[0, 3].tolist() == [False, True]


# -- resuming, and what the tracker refuses -------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(cases(), st.data())
def test_a_snapshot_resumes_the_run(case, data) -> None:
    market, params, history = case
    sessions, rounds = history.shape[:2]
    stop = data.draw(st.integers(0, rounds))
    straight, first = (
        SignalTracker(market, params, sessions),
        SignalTracker(market, params, sessions),
    )
    for t in range(stop):
        straight.update(history[:, t])
        first.update(history[:, t])
    resumed = SignalTracker(market, params, sessions)
    resumed.restore(json.loads(json.dumps(first.snapshot())))
    assert resumed.snapshot() == first.snapshot()
    for t in range(stop, rounds):
        assert (resumed.update(history[:, t]) == straight.update(history[:, t])).all(), t


def test_a_round_or_a_snapshot_of_the_wrong_shape_is_refused() -> None:
    tracker = SignalTracker(MARKET, SignalParams(), 3)
    with pytest.raises(ValueError, match="shaped"):
        tracker.update(np.zeros((2, 2, 2)))
    other = SignalTracker(MARKET, SignalParams(), 2).snapshot()
    with pytest.raises(ValueError, match="another tracker"):
        tracker.restore(other)
    with pytest.raises(ValidationError):
        tracker.restore({**tracker.snapshot(), "surprise": 1})
    with pytest.raises(ValueError, match="at least one session"):
        SignalTracker(MARKET, SignalParams(), 0)
