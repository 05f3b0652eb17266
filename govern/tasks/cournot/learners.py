"""Firms that learn from profit alone: tabular Q-learning in the manner of Calvano et al.
(AER 2020), adapted to Cournot quantities as Waltman & Kaymak (2008) did.

- **Actions**: a grid of quantity levels per firm and commodity; a firm's action is one
  level per commodity. The default grid is Calvano's construction carried over to
  quantities: ``points`` levels evenly spanning each firm's Cournot-Nash quantity and its
  market-division quantity in that commodity (46.67 .. 60 where it is the low-cost firm,
  26.67 .. 0 where it is the high-cost one), widened by ``extension`` of that span on each
  side (Calvano's xi; clipped to [0, capacity]). Every one-shot best reply to a rival on
  such a grid lies within it (the high-cost firm's reply to a monopolist, 20, is on the
  default grid), so the grid forbids no profitable deviation: it leaves out only
  quantities that are never a best reply to a rival on the grid -- over-production as a
  punishment among them, which Calvano's xi partly allows (``extension``). A common
  list of ``levels`` for every firm and commodity is the alternative. The grid decides
  much: measured with beta 1e-5, the common grid ``0, 26.67, 46.67, 60`` gave a mean
  tier of 0.53 over 30 seeds (mostly Nash, or both firms at 26.67), and with beta 4e-6
  ``0, 20, 26.67, 46.67, 60`` gave tier 2 on 10 of 10 seeds (46.67 / 20 each: profit
  1578), where the span grid gives 3.23 (benchmarks/cournot_market.py).
- **State**: the previous round's actions of all firms (as Calvano: memory one), 625
  states for two firms.
- **Learning**: ``Q(s,a) += alpha (r + delta max Q(s',.) - Q(s,a))`` with r the firm's
  realised profit after fines; epsilon-greedy exploration ``epsilon = exp(-beta t)``.
- **Initial Q**: Calvano's -- the discounted payoff of each action against rivals who play
  uniformly at random, the same in every state.
- **Convergence**: Calvano's rule, checked in blocks: each firm's greedy action in every
  state unchanged for ``stable_periods`` consecutive periods (checked every
  ``check_every``), or ``max_periods`` reached. The periods trained are recorded.

Training is vectorised over sessions (one session = one pair of firms with its own seed):
each session draws from its own seeded stream and stops at its own convergence, so a
session's result is the same whether it is trained alone or beside 29 others. A regime
can act while they learn (``regime``, one over all sessions at once,
``governance/rounds.py``): it sees each period as a round, its fines come off the reward
and a suspended firm produces nothing; the decision that earned a suspension is learnt
over it, as a semi-Markov step (``_Governed``), so the periods lost reach its value.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from govern.tasks.cournot.firms import Feedback, Observation
from govern.tasks.cournot.market import MarketParams


class LearningConfig(BaseModel):
    """The learners' hyper-parameters. alpha and delta are Calvano's baseline; beta is
    larger than his 4e-6 so that one pair converges in about 1.2 million periods (~30 s
    here) -- with 7e-6 the 30-seed mean tier was 3.43 but a pair takes ~1.6 million."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    points: int = Field(5, ge=2, description="levels per firm and commodity")
    extension: float = Field(0.0, ge=0, description="grid beyond Nash and division (xi)")
    levels: tuple[float, ...] | None = Field(None, description="a common grid instead")
    alpha: float = Field(0.15, gt=0, le=1, description="learning rate (Calvano: 0.15)")
    delta: float = Field(0.95, ge=0, lt=1, description="discount (Calvano: 0.95)")
    beta: float = Field(1e-5, gt=0, description="exploration decay: eps = exp(-beta t)")
    max_periods: int = Field(2_000_000, ge=1)
    check_every: int = Field(10_000, ge=1)
    stable_periods: int = Field(100_000, ge=1, description="Calvano: 100,000")


class Grid:
    """The action spaces: firm ``f``'s action ``k`` is ``actions[f, k]`` (one level per
    commodity); a state is the joint action of all firms in mixed radix."""

    def __init__(self, levels: np.ndarray) -> None:
        self.levels = np.sort(np.asarray(levels, dtype=float), axis=-1)  # (firms, comm., m)
        self.firms, self.commodities, points = self.levels.shape
        index = np.array(list(itertools.product(range(points), repeat=self.commodities)))
        commodity = np.arange(self.commodities)
        self.actions = np.stack([self.levels[f][commodity, index] for f in range(self.firms)])
        self.size = len(index)
        self.states = self.size**self.firms
        self._radix = self.size ** np.arange(self.firms - 1, -1, -1)
        self._level_radix = points ** np.arange(self.commodities - 1, -1, -1)

    @classmethod
    def of(cls, market: MarketParams, config: LearningConfig) -> Grid:
        """The grid ``config`` asks for in ``market``."""
        shape = (market.firms, market.commodities)
        if config.levels is not None:
            return cls(
                np.broadcast_to(
                    np.asarray(config.levels, dtype=float), (*shape, len(config.levels))
                )
            )
        nash, division = market.nash_closed_form(), market.market_division()
        span = division - nash
        steps = np.linspace(-config.extension, 1 + config.extension, config.points)
        levels = nash[..., None] + span[..., None] * steps
        return cls(np.clip(levels, 0.0, market.capacity))

    def action_of(self, quantities: np.ndarray) -> np.ndarray:
        """Each firm's action nearest to ``quantities`` (firms, commodities) -- a suspended
        firm's zeros included, which may lie off its grid."""
        gaps = np.abs(np.asarray(quantities, dtype=float)[..., None] - self.levels)
        return gaps.argmin(axis=-1) @ self._level_radix

    def state_of(self, actions: np.ndarray) -> np.ndarray:
        """The state index of joint ``actions`` (..., firms)."""
        return np.asarray(actions) @ self._radix

    def quantities(self, actions: np.ndarray) -> np.ndarray:
        """The quantities (firms, commodities) of joint ``actions`` (firms,)."""
        return self.actions[np.arange(self.firms), np.asarray(actions)]

    def payoffs(self, market: MarketParams) -> np.ndarray:
        """Every firm's profit at every joint action: (states, firms)."""
        joint = np.array(list(itertools.product(range(self.size), repeat=self.firms)))
        q = self.actions[np.arange(self.firms), joint]  # (states, firms, commodities)
        prices = np.maximum(0.0, market.a - q.sum(axis=1) / market.b)
        return ((prices[:, None, :] - market.cost_table) * q).sum(axis=2)


def calvano_q0(grid: Grid, payoffs: np.ndarray, delta: float) -> np.ndarray:
    """Initial Q (firms, states, actions): the discounted payoff of each action against
    rivals playing uniformly at random, equal in every state (Calvano et al., 2020)."""
    per = payoffs.reshape((grid.size,) * grid.firms + (grid.firms,))
    q0 = np.empty((grid.firms, grid.size))
    for i in range(grid.firms):
        others = tuple(j for j in range(grid.firms) if j != i)
        q0[i] = per[..., i].mean(axis=others) / (1 - delta)
    return np.repeat(q0[:, None, :], grid.states, axis=1)


@dataclass
class Session:
    """One trained pair: Q tables (firms, states, actions), the periods trained, whether
    it met the convergence rule, and the state it ended in (where its play resumes)."""

    seed: int
    q: np.ndarray
    periods: int
    converged: bool
    state: int
    seconds: float

    def firms(self, market: MarketParams, config: LearningConfig) -> list[QLearningFirm]:
        grid = Grid.of(market, config)
        return [
            QLearningFirm(grid, self.q[i], config, self.periods, self.state)
            for i in range(grid.firms)
        ]


class BatchRegime(Protocol):
    """A regime over every session at once: called after each period ``t`` with the
    quantities produced (sessions, firms, commodities) and the profits before fines
    (sessions, firms); its answer's ``fines`` (amounts) and ``suspend`` (rounds of zero
    production from the next period on) are shaped (sessions, firms)."""

    def __call__(self, t: int, quantities: np.ndarray, profits: np.ndarray) -> BatchVerdict: ...


class BatchVerdict(Protocol):
    @property
    def fines(self) -> np.ndarray: ...

    @property
    def suspend(self) -> np.ndarray: ...


def train(
    market: MarketParams,
    config: LearningConfig,
    seeds: Sequence[int],
    regime: BatchRegime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Session]:
    """Train one session per seed, vectorised over sessions, under ``regime`` when given
    (made for ``len(seeds)`` sessions). ``progress(periods, still_learning)`` is told after
    each block of ``check_every`` periods."""
    grid = Grid.of(market, config)
    payoffs = grid.payoffs(market)
    b, n, a_count, s_count = len(seeds), grid.firms, grid.size, grid.states
    q = np.tile(calvano_q0(grid, payoffs, config.delta)[None], (b, 1, 1, 1))
    flat = q.reshape(b * n * s_count, a_count)  # a view: rows are (session, firm, state)
    base = (np.arange(b)[:, None] * n + np.arange(n)[None, :]) * s_count  # (b, n)
    streams = [np.random.default_rng(seed) for seed in seeds]
    state = np.array([s.integers(s_count) for s in streams])
    active = np.ones(b, dtype=bool)
    periods = np.zeros(b, dtype=int)
    stable = np.zeros(b, dtype=int)
    policy = flat.argmax(axis=1).reshape(b, -1)
    governed = _Governed(regime, grid, market, b, config) if regime is not None else None
    start = time.perf_counter()
    t = 0
    while t < config.max_periods and active.any():
        block = min(config.check_every, config.max_periods - t)
        draws = np.stack([s.random((block, n)) for s in streams], axis=1)  # (block, b, n)
        random_actions = np.stack([s.integers(a_count, size=(block, n)) for s in streams], axis=1)
        eps = np.exp(-config.beta * (t + np.arange(block)))
        for k in range(block):
            rows = base + state[:, None]
            if governed is not None:
                governed.resume(flat, rows, active)
            greedy = flat[rows].argmax(axis=2)
            act = np.where(draws[k] < eps[k], random_actions[k], greedy)
            learning = active[:, None]
            if governed is None:
                nxt = grid.state_of(act)
                reward = payoffs[nxt]
            else:
                nxt, reward, suspended = governed(t + k, act)
                learning = governed.hold(rows, act, reward, learning & ~suspended)
            target = reward + config.delta * flat[base + nxt[:, None]].max(axis=2)
            current = flat[rows, act]
            flat[rows, act] = np.where(
                learning, current + config.alpha * (target - current), current
            )
            state = np.where(active, nxt, state)
        t += block
        periods[active] = t
        now = flat.argmax(axis=1).reshape(b, -1)
        same = (now == policy).all(axis=1)
        stable = np.where(same, stable + block, 0)
        policy = now
        active &= stable < config.stable_periods
        if progress is not None:
            progress(t, int(active.sum()))
    seconds = time.perf_counter() - start
    return [
        Session(
            int(seed),
            q[i].copy(),
            int(periods[i]),
            bool(stable[i] >= config.stable_periods),
            int(state[i]),
            seconds,
        )
        for i, seed in enumerate(seeds)
    ]


class _Governed:
    """The regime during training, with each session's suspensions to serve: a suspended
    firm produces nothing, and the state the learners see is what was produced.

    A suspension is time the firm lives through without deciding, so the decision it made
    just before is learnt as a semi-Markov step (Bradtke & Duff, 1995), once it decides
    again: the reward of the period it decided in plus the discounted rewards of the
    suspended periods (nothing produced, less any fine), and the value of the state it
    then decides in, discounted by every period that passed. Its own choices while
    suspended were not played and teach it nothing. Without this the suspension, the top
    of the ladder, would reach no payoff: the decision that earned it would be scored as
    if the firm had played on, and the periods lost would be learnt by nobody."""

    def __init__(
        self,
        regime: BatchRegime,
        grid: Grid,
        market: MarketParams,
        b: int,
        config: LearningConfig,
    ) -> None:
        self.regime, self.grid, self.market = regime, grid, market
        self.alpha, self.delta = config.alpha, config.delta
        shape = (b, grid.firms)
        self.remaining = np.zeros(shape, dtype=int)
        self._firm = np.arange(grid.firms)
        # each firm's decision held over its suspension: its Q row and action, the
        # discounted reward since, and the discount of the value where it decides next
        self.held = np.zeros(shape, dtype=bool)
        self.held_row = np.zeros(shape, dtype=int)
        self.held_action = np.zeros(shape, dtype=int)
        self.held_return = np.zeros(shape)
        self.held_discount = np.ones(shape)

    def resume(self, flat: np.ndarray, rows: np.ndarray, active: np.ndarray) -> None:
        """Before a period: learn each held decision of a firm that decides again now, from
        the state it decides in (``rows``: each firm's Q row this period)."""
        due = self.held & (self.remaining == 0) & active[:, None]
        if not due.any():
            return
        target = self.held_return[due] + self.held_discount[due] * flat[rows[due]].max(axis=1)
        row, action = self.held_row[due], self.held_action[due]
        flat[row, action] += self.alpha * (target - flat[row, action])
        self.held &= ~due

    def __call__(self, t: int, act: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next state of each session, each firm's reward after fines, and which firms
        were suspended, for period ``t`` (act: (sessions, firms)). A suspended firm's
        reward goes to the decision it holds."""
        q = self.grid.actions[self._firm, act]  # (sessions, firms, commodities)
        suspended = self.remaining > 0
        if suspended.any():
            q = np.where(suspended[..., None], 0.0, q)
            states = self.grid.state_of(self.grid.action_of(q))
        else:
            states = self.grid.state_of(act)
        profits = self.market.profits(q).sum(axis=-1)
        verdict = self.regime(t, q, profits)
        self.remaining = np.maximum(np.maximum(self.remaining - 1, 0), verdict.suspend)
        rewards = profits - verdict.fines
        waiting = self.held & suspended
        if waiting.any():
            self.held_return += np.where(waiting, self.held_discount * rewards, 0.0)
            self.held_discount[waiting] *= self.delta
        return states, rewards, suspended

    def hold(
        self, rows: np.ndarray, act: np.ndarray, rewards: np.ndarray, decided: np.ndarray
    ) -> np.ndarray:
        """After a period: hold the decision of each firm that ``decided`` and is suspended
        from the next period; the others (returned) learn it now, as usual."""
        held = decided & (self.remaining > 0)
        if held.any():
            self.held |= held
            self.held_row[held] = rows[held]
            self.held_action[held] = act[held]
            self.held_return[held] = rewards[held]
            self.held_discount[held] = self.delta
        return decided & ~held  # type: ignore[no-any-return]


class QLearningFirm:
    """A trained learner in the market loop: greedy up to its remaining exploration, and
    still learning from realised profit (so fines in play keep acting on it).

    A suspension is learnt as in training (``_Governed``): the choices a suspended firm is
    asked for are not played and teach it nothing, and the decision it made before the
    suspension is learnt, once it produces again, from the rewards of the suspended rounds
    too. The market tells a firm it was suspended only after the round, so that decision
    was already learnt as an ordinary step: it is taken back (nothing else has changed its
    Q since) and held."""

    def __init__(
        self,
        grid: Grid,
        q: np.ndarray,
        config: LearningConfig,
        period: int = 0,
        state: int | None = None,
    ) -> None:
        self.grid, self.q, self.config = grid, q.copy(), config
        self.period = period
        self.state = state
        self._acted: tuple[int, int] | None = None
        # the last decision learnt: (state, action, its Q before, its reward)
        self._learnt: tuple[int, int, float, float] | None = None
        # the decision held over a suspension: (state, action, discounted reward, discount)
        self._held: tuple[int, int, float, float] | None = None

    async def act(self, observation: Observation) -> np.ndarray:
        if len(observation.quantities):
            state = int(self.grid.state_of(self.grid.action_of(observation.quantities[-1])))
        elif self.state is not None:
            state = self.state
        else:
            state = int(observation.rng.integers(self.grid.states))
        eps = np.exp(-self.config.beta * self.period)
        if observation.rng.random() < eps:
            action = int(observation.rng.integers(self.grid.size))
        else:
            action = int(self.q[state].argmax())
        self._acted = (state, action)
        return self.grid.actions[observation.firm, action]

    def learn(self, feedback: Feedback) -> None:
        if self._acted is None:
            return
        state, action = self._acted
        nxt = int(self.grid.state_of(self.grid.action_of(feedback.quantities)))
        alpha, delta = self.config.alpha, self.config.delta
        if feedback.suspended:
            if self._held is None and self._learnt is not None:
                held_state, held_action, before, reward = self._learnt
                self.q[held_state, held_action] = before
                self._held = (held_state, held_action, reward, delta)
            if self._held is not None:
                held_state, held_action, reward, discount = self._held
                reward += discount * feedback.profit
                self._held = (held_state, held_action, reward, discount * delta)
            self._learnt = None
        else:
            if self._held is not None:
                held_state, held_action, reward, discount = self._held
                target = reward + discount * self.q[state].max()
                self.q[held_state, held_action] += alpha * (
                    target - self.q[held_state, held_action]
                )
                self._held = None
            before = float(self.q[state, action])
            target = feedback.profit + delta * self.q[nxt].max()
            self.q[state, action] += alpha * (target - before)
            self._learnt = (state, action, before, feedback.profit)
        self.state, self.period, self._acted = nxt, self.period + 1, None
