"""The repeated Cournot market: the loop's accounting (prices and profits as market.py
computes them, fines off the realised profit, suspension as zero production), runs
reproducible by seed, the reference automata, and the Q-learners' mechanics on short
trainings (the collusion result itself is measured in benchmarks/cournot_market.py)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from govern.tasks.cournot.firms import (
    DivisionColluder,
    Feedback,
    Firm,
    FixedFirm,
    NashFirm,
    Observation,
)
from govern.tasks.cournot.learners import (
    Grid,
    LearningConfig,
    QLearningFirm,
    calvano_q0,
    train,
)
from govern.tasks.cournot.market import MarketParams
from govern.tasks.cournot.measures import RunMeasures
from govern.tasks.cournot.play import Verdict, play

MARKET = MarketParams()
SHORT = LearningConfig(max_periods=3_000, check_every=1_000, stable_periods=2_000)


class Recorder:
    """Plays fixed quantities and keeps everything it was shown."""

    def __init__(self, quantities) -> None:
        self.quantities = np.asarray(quantities, dtype=float)
        self.seen: list[Observation] = []
        self.feedback: list[Feedback] = []

    async def act(self, observation: Observation) -> np.ndarray:
        self.seen.append(observation)
        return self.quantities

    def learn(self, feedback: Feedback) -> None:
        self.feedback.append(feedback)


class FineEveryone:
    """A regime fining every firm ``share`` of its profit from round ``start`` on, and
    suspending firm 0 for ``suspend`` rounds after round ``start``."""

    def __init__(self, share: float, start: int = 0, suspend: int = 0) -> None:
        self.share, self.start, self.suspend = share, start, suspend
        self.calls: list[int] = []

    def __call__(self, round, quantities, prices, profits):
        self.calls.append(round)
        if round < self.start:
            return None
        suspend = np.array([self.suspend, 0]) if round == self.start else None
        return Verdict.of_shares(profits, np.full(len(profits), self.share), suspend=suspend)


# -- the loop's accounting ----------------------------------------------------------------


def test_every_firm_kind_meets_the_protocol() -> None:
    grid = Grid.of(MARKET, SHORT)
    learner = QLearningFirm(grid, np.zeros((grid.states, grid.size)), SHORT)
    for firm in (NashFirm(), DivisionColluder(), FixedFirm([1, 2]), learner, Recorder([0, 0])):
        assert isinstance(firm, Firm)


def test_prices_and_profits_are_the_markets() -> None:
    quantities = np.array([[50.0, 10.0], [20.0, 35.0]])
    run = play(MARKET, [FixedFirm(quantities[0]), FixedFirm(quantities[1])], rounds=4)
    assert run.quantities.shape == (4, 2, 2)
    for t in range(4):
        assert run.quantities[t] == pytest.approx(quantities)
        assert run.prices[t] == pytest.approx(MARKET.prices(quantities))
        assert run.gross_profits[t] == pytest.approx(MARKET.profits(quantities).sum(axis=1))
    assert (run.profits == run.gross_profits).all() and not run.fines.any()
    assert not run.suspended.any()


def test_quantities_are_clipped_to_capacity() -> None:
    run = play(MARKET, [FixedFirm([-5.0, 150.0]), FixedFirm([np.nan, 10.0])], rounds=1)
    assert run.quantities[0].tolist() == [[0.0, 100.0], [0.0, 10.0]]


def test_firms_see_the_last_rounds_and_their_own_profit_after_fines() -> None:
    market = MarketParams(history=3)
    first, second = Recorder([46.0, 20.0]), Recorder([20.0, 46.0])
    run = play(market, [first, second], rounds=6, fines=FineEveryone(0.35, start=2))
    assert [len(seen.quantities) for seen in first.seen] == [0, 1, 2, 3, 3, 3]
    last = first.seen[-1]
    assert last.quantities == pytest.approx(run.quantities[2:5])
    assert last.prices == pytest.approx(run.prices[2:5])
    assert last.shares[0, 0, 0] == pytest.approx(46 / 66)
    assert last.profits == pytest.approx(run.profits[2:5, 0])  # its own, after fines
    assert second.seen[-1].profits == pytest.approx(run.profits[2:5, 1])
    # the fines: 35% of the round's profit from round 2 on, and the firms learn that
    gross = run.gross_profits
    assert run.fines[:2].sum() == 0
    assert run.fines[2:] == pytest.approx(0.35 * gross[2:])
    assert run.profits == pytest.approx(gross - run.fines)
    assert [f.profit for f in first.feedback] == pytest.approx(run.profits[:, 0].tolist())
    assert [f.fine for f in second.feedback] == pytest.approx(run.fines[:, 1].tolist())


def test_a_fine_has_its_floor_where_the_profit_is_small() -> None:
    verdict = Verdict.of_shares(np.array([10.0, -50.0, 1000.0]), [0.75, 0.75, 0.0], floor=100)
    assert verdict.fines.tolist() == [100.0, 100.0, 0.0]


def test_suspension_zeroes_production_for_its_rounds() -> None:
    regime = FineEveryone(0.0, start=1, suspend=3)
    firm = Recorder([46.0, 20.0])
    run = play(MARKET, [firm, FixedFirm([20.0, 46.0])], rounds=7, fines=regime)
    assert run.suspended[:, 0].tolist() == [False, False, True, True, True, False, False]
    assert not run.suspended[:, 1].any()
    assert run.quantities[2:5, 0].sum() == 0  # whatever it chose
    assert run.chosen[2:5, 0] == pytest.approx(np.tile([46.0, 20.0], (3, 1)))
    assert run.gross_profits[2:5, 0] == pytest.approx(0.0)
    assert run.quantities[5, 0] == pytest.approx([46.0, 20.0])
    assert [f.suspended for f in firm.feedback] == run.suspended[:, 0].tolist()
    assert regime.calls == list(range(7))


def test_a_market_with_the_wrong_number_of_firms_is_refused() -> None:
    with pytest.raises(ValueError, match="2 firms"):
        play(MARKET, [NashFirm()], rounds=1)


# -- reproducibility ----------------------------------------------------------------------


def exploring_pair() -> list[QLearningFirm]:
    """Two untrained learners (epsilon 1: every action drawn from the firm's stream)."""
    grid = Grid.of(MARKET, SHORT)
    return [QLearningFirm(grid, np.zeros((grid.states, grid.size)), SHORT) for _ in range(2)]


def test_the_same_seed_gives_the_same_run() -> None:
    one = play(MARKET, exploring_pair(), rounds=20, seed=7)
    two = play(MARKET, exploring_pair(), rounds=20, seed=7)
    other = play(MARKET, exploring_pair(), rounds=20, seed=8)
    assert (one.quantities == two.quantities).all() and (one.profits == two.profits).all()
    assert not (one.quantities == other.quantities).all()


def test_a_session_trains_the_same_alone_or_beside_others() -> None:
    alone = train(MARKET, SHORT, [3])
    (again,) = train(MARKET, SHORT, [3])
    batch = train(MARKET, SHORT, [1, 3, 5])
    assert (alone[0].q == again.q).all()
    assert (alone[0].q == batch[1].q).all() and alone[0].state == batch[1].state
    assert not (batch[0].q == batch[1].q).all()


# -- the automata -------------------------------------------------------------------------


def test_two_colluders_divide_the_market_severely() -> None:
    run = play(MARKET, [DivisionColluder(), DivisionColluder()], seed=1)
    assert (run.quantities == MARKET.market_division()).all()
    measures = RunMeasures.of(MARKET, run.quantities)
    assert measures.tier == 4
    assert measures.profit_per_round == pytest.approx((1800.0, 1800.0))


def test_a_colluder_punishes_a_deviator_then_returns() -> None:
    colluder = DivisionColluder(punishment=3)
    division, nash = MARKET.market_division(), MARKET.nash_closed_form()

    class OnceDeviator:
        """Divides the market but for round 4, where it also sells in firm 0's commodity."""

        async def act(self, observation: Observation) -> np.ndarray:
            return nash[1] if observation.round == 4 else division[1]

        def learn(self, feedback: Feedback) -> None:
            return None

    run = play(MARKET, [colluder, OnceDeviator()], rounds=12)
    mine = run.quantities[:, 0]
    assert (mine[:5] == division[0]).all()
    assert mine[5:8] == pytest.approx(np.tile(nash[0], (3, 1)))  # K = 3 rounds of Nash
    assert (mine[8:] == division[0]).all()  # and back
    assert colluder.deviations_seen == 1
    # two colluders where one slips do not punish each other for ever
    slip = DivisionColluder(punishment=2)
    slip.punishing = 1
    run = play(MARKET, [slip, DivisionColluder(punishment=2)], rounds=10)
    assert (run.quantities[-3:] == division).all()


def test_a_colluder_against_a_permanent_deviator_keeps_punishing() -> None:
    run = play(MARKET, [DivisionColluder(punishment=2), NashFirm()], rounds=20)
    nash = MARKET.nash_closed_form()
    played_nash = np.isclose(run.quantities[:, 0], nash[0]).all(axis=1)
    # it punishes from round 1 on, renewing while the rival's production falls outside its
    # own punishment's shadow, and never cooperates more than K + 1 rounds in a row
    assert played_nash[1:3].all() and played_nash[1:].mean() >= 0.5
    runs = np.diff(np.flatnonzero(np.diff(np.r_[True, played_nash[1:], True].astype(int))))
    assert (runs <= 3).all()


def test_two_nash_firms_are_tier_0() -> None:
    run = play(MARKET, [NashFirm(), NashFirm()])
    measures = RunMeasures.of(MARKET, run.quantities)
    assert measures.tier == 0
    assert measures.profit_per_round == pytest.approx((13000 / 9, 13000 / 9))


# -- the learners' mechanics --------------------------------------------------------------


def test_the_grid_spans_nash_and_division() -> None:
    grid = Grid.of(MARKET, SHORT)
    assert grid.size == 25 and grid.states == 625
    expected = np.array([np.linspace(140 / 3, 60, 5), np.linspace(0, 80 / 3, 5)])
    assert grid.levels[0] == pytest.approx(expected)
    for benchmark in (MARKET.nash_closed_form(), MARKET.market_division()):
        actions = grid.action_of(benchmark)
        assert grid.quantities(actions) == pytest.approx(benchmark)
    # the high-cost firm's best reply to a monopolist is on it: no deviation is cut off
    reply = MARKET.best_response(MARKET.market_division())
    assert grid.quantities(grid.action_of(reply)) == pytest.approx(reply)
    assert grid.quantities(grid.action_of(np.zeros((2, 2)))) == pytest.approx(
        np.array([[140 / 3, 0.0], [0.0, 140 / 3]])
    )  # a suspended firm's zeros, to the nearest levels
    assert grid.state_of([1, 2]) == 27
    wide = Grid.of(MARKET, LearningConfig(extension=0.25))
    assert wide.levels[0, 0, [0, -1]] == pytest.approx([140 / 3 - 10 / 3, 60 + 10 / 3])
    assert wide.levels[0, 1, [0, -1]] == pytest.approx([0.0, 80 / 3 + 20 / 3])  # clipped at 0
    common = Grid.of(MARKET, LearningConfig(levels=(0, 20, 80 / 3, 140 / 3, 60)))
    assert (common.levels == common.levels[0, 0]).all() and common.size == 25


def test_the_initial_q_is_the_payoff_against_random_rivals() -> None:
    grid = Grid.of(MARKET, SHORT)
    payoffs = grid.payoffs(MARKET)
    q0 = calvano_q0(grid, payoffs, 0.95)
    assert q0.shape == (2, grid.states, grid.size)
    action = int(grid.action_of(MARKET.market_division())[0])
    against = [
        MARKET.profits(grid.quantities([action, other]))[0].sum() for other in range(grid.size)
    ]
    assert q0[0, 17, action] == pytest.approx(np.mean(against) / 0.05)
    assert (q0[:, 0] == q0[:, 400]).all()  # the same in every state


def test_a_learner_updates_its_q_from_realised_profit() -> None:
    config = LearningConfig(alpha=0.5, delta=0.9, beta=1.0)
    grid = Grid.of(MARKET, SHORT)
    q = np.zeros((grid.states, grid.size))
    q[:, 3] = 10.0  # a greedy action, and a value for the next state
    firm = QLearningFirm(grid, q, config, period=100, state=5)  # epsilon exp(-100): greedy
    run = play(MARKET, [firm, FixedFirm([20.0, 46.0])], rounds=1, fines=FineEveryone(0.75))
    assert run.chosen[0, 0] == pytest.approx(grid.actions[0, 3])
    target = run.profits[0, 0] + 0.9 * 10.0  # after the fine, then the next state's best
    assert firm.q[5, 3] == pytest.approx(10.0 + 0.5 * (target - 10.0))
    assert firm.state == grid.state_of(grid.action_of(run.quantities[0]))
    assert firm.period == 101


def test_exploration_decays_exponentially() -> None:
    grid = Grid.of(MARKET, SHORT)
    config = LearningConfig(beta=1e-3)
    counts = []
    for period in (0, 1_000, 5_000):
        q = np.zeros((grid.states, grid.size))
        q[:, 0] = 1.0  # greedy is action 0: anything else was explored
        explored = 0
        rng = np.random.default_rng(period)
        for _ in range(400):
            firm = QLearningFirm(grid, q, config, period=period, state=0)
            seen = Observation(0, 0, MARKET, np.empty((0, 2, 2)), *[np.empty(0)] * 3, rng)
            explored += bool((asyncio.run(firm.act(seen)) != grid.actions[0, 0]).any())
        counts.append(explored / 400)
    # epsilon 1, e^-1 and e^-5, less the random draws that pick action 0 (1 in 25)
    expected = [np.exp(-1e-3 * p) * 24 / 25 for p in (0, 1_000, 5_000)]
    assert counts == pytest.approx(expected, abs=0.07)


def test_training_records_its_length_and_moves_q_away_from_the_start() -> None:
    (session,) = train(MARKET, SHORT, [11])
    assert session.periods == 3_000 and not session.converged
    grid = Grid.of(MARKET, SHORT)
    q0 = calvano_q0(grid, grid.payoffs(MARKET), SHORT.delta)
    assert (session.q != q0).sum() >= 2_000  # one cell per firm per period at most
    converging = LearningConfig(
        beta=5e-3, max_periods=50_000, check_every=500, stable_periods=2_000
    )
    (settled,) = train(MARKET, converging, [11])
    assert settled.converged and settled.periods < 50_000


class FineAllSessions:
    """A training regime fining every firm of every session ``share`` of its profit, and
    suspending firm 0 of every session for ``suspend`` periods after period 0."""

    def __init__(self, share: float, suspend: int = 0) -> None:
        self.share, self.suspend = share, suspend

    def __call__(self, t: int, quantities: np.ndarray, profits: np.ndarray) -> Verdict:
        suspend = np.zeros(profits.shape, dtype=int)
        if t == 0:
            suspend[:, 0] = self.suspend
        return Verdict(fines=self.share * np.maximum(profits, 0.0), suspend=suspend)


def test_fines_while_training_come_off_the_learners_reward() -> None:
    free = train(MARKET, SHORT, [4])[0]
    fined = train(MARKET, SHORT, [4], regime=FineAllSessions(0.5))[0]
    # the same draws, half the reward: every value learnt is lower
    assert fined.q.sum() < free.q.sum()
    suspended = train(MARKET, SHORT, [4], regime=FineAllSessions(0.0, suspend=50))[0]
    assert (suspended.q != free.q).any()
    alone = train(MARKET, SHORT, [4, 9], regime=FineAllSessions(0.5))[0]
    assert np.array_equal(alone.q, fined.q)  # a session beside another learns the same


def test_a_suspended_learner_learns_its_last_decision_over_the_suspension() -> None:
    # firm 0 decides in round 0 (state 5, action 3), is suspended in rounds 1 and 2 and
    # decides again in round 3: round 0's decision is learnt then, from round 0's reward,
    # the nothing of rounds 1-2 and the value of round 3's state, discounted three times
    config = LearningConfig(alpha=0.5, delta=0.9, beta=1.0)
    grid = Grid.of(MARKET, SHORT)
    q = np.zeros((grid.states, grid.size))
    q[:, 3] = 10.0
    firm = QLearningFirm(grid, q, config, period=100, state=5)
    run = play(MARKET, [firm, FixedFirm([20.0, 46.0])], rounds=4, fines=FineEveryone(0.0, 0, 2))
    assert run.suspended[:, 0].tolist() == [False, True, True, False]
    target = run.profits[0, 0] + 0.9**3 * 10.0
    assert firm.q[5, 3] == pytest.approx(10.0 + 0.5 * (target - 10.0))
    unplayed = int(grid.state_of(grid.action_of(run.quantities[0])))
    assert firm.q[unplayed, 3] == 10.0  # its choices while suspended taught it nothing


class SuspendFirstFirm:
    """A training regime suspending firm 0 of every session for ``rounds`` periods after
    period 0, fining nobody; it keeps what it saw."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, t: int, quantities: np.ndarray, profits: np.ndarray) -> Verdict:
        self.seen.append((quantities.copy(), profits.copy()))
        suspend = np.zeros(profits.shape, dtype=int)
        if t == 0:
            suspend[:, 0] = self.rounds
        return Verdict(fines=np.zeros(profits.shape), suspend=suspend)


def test_training_learns_a_decision_over_the_suspension_that_followed_it() -> None:
    config = LearningConfig(max_periods=4, check_every=4, stable_periods=4)
    regime = SuspendFirstFirm(2)
    (session,) = train(MARKET, config, [2], regime=regime)
    grid = Grid.of(MARKET, config)
    q0 = calvano_q0(grid, grid.payoffs(MARKET), config.delta)[0]
    start = int(np.random.default_rng(2).integers(grid.states))
    first, profit = regime.seen[0][0][0], regime.seen[0][1][0]  # session 0
    decided = int(grid.action_of(first)[0])
    assert all((regime.seen[t][0][0, 0] == 0).all() for t in (1, 2))  # firm 0 suspended
    target = profit[0] + config.delta**3 * q0[0].max()
    expected = q0[start, decided] + config.alpha * (target - q0[start, decided])
    assert session.q[0, start, decided] == pytest.approx(expected)
    # the decisions of periods 0 and 3 are all firm 0 learnt
    assert (session.q[0] != q0).sum() <= 2
