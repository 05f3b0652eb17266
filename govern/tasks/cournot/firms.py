"""What a firm in the repeated market is, and two reference automata to test against.

A firm is anything with ``async act(observation) -> quantities`` and ``learn(feedback)``: a
model behind a prompt, a Q-learner (``learners.py``) or a fixed strategy. The interface is
kept that small so that the market loop (``play.py``) cannot tell them apart and every
kind of firm meets the same regime. A firm that talks over the market's optional message
channel returns a :class:`Move` instead, its quantities with a message; the loop delivers
the message to every other firm's next :class:`Observation`, so firms never read each
other's objects, and firms that say nothing need not know the channel exists.

The automata are references, not subjects of the experiment:

- :class:`NashFirm` plays its Cournot-Nash quantities every round (tier 0 by itself);
- :class:`DivisionColluder` plays market division (its cheap commodity's monopoly
  quantity, nothing in the other) and punishes a firm that produced in its commodity with
  ``punishment`` rounds of Nash play -- the textbook trigger strategy that makes division
  an equilibrium of the repeated game, and so the shape tacit collusion would take.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from govern.tasks.cournot.market import MarketParams


@dataclass(frozen=True)
class Observation:
    """What firm ``firm`` sees before choosing round ``round``: the last
    ``market.history`` rounds (oldest first; empty arrays in round 0) of everyone's
    quantities (h, firms, commodities), the prices (h, commodities), the market shares
    (h, firms, commodities), and its own realised profit after fines (h,). ``rng`` is the
    firm's own seeded stream, so a run is reproducible from the market's seed.
    ``messages`` holds what the other firms sent last round, by firm (from 0): empty
    without a channel, and never the firm's own message."""

    firm: int
    round: int
    market: MarketParams
    quantities: np.ndarray
    prices: np.ndarray
    shares: np.ndarray
    profits: np.ndarray
    rng: np.random.Generator
    messages: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Move:
    """A firm's choice for a round with what it says on the channel: ``message`` (None for
    nothing) reaches every other firm in the next round. A firm that never speaks returns
    its quantities alone."""

    quantities: np.ndarray
    message: str | None = None


@dataclass(frozen=True)
class Feedback:
    """What firm ``firm`` learns after round ``round``: the quantities actually produced
    (a suspended firm's are zero), the prices, and its profit after any fine (``fine`` is
    what was taken; ``profit + fine`` is the market's profit)."""

    firm: int
    round: int
    quantities: np.ndarray
    prices: np.ndarray
    profit: float
    fine: float
    suspended: bool


@runtime_checkable
class Firm(Protocol):
    """A firm of the repeated market."""

    async def act(self, observation: Observation) -> np.ndarray | Move:
        """Its quantity of each commodity this round (clipped to [0, capacity] by the loop),
        alone or in a :class:`Move` with a message. A coroutine, so that firms behind a
        model are asked side by side."""
        ...

    def learn(self, feedback: Feedback) -> None:
        """Take in the round's outcome; the only reward signal is realised profit."""
        ...


class NashFirm:
    """Plays its Cournot-Nash quantities whatever happens."""

    async def act(self, observation: Observation) -> np.ndarray:
        return observation.market.nash_closed_form()[observation.firm]

    def learn(self, feedback: Feedback) -> None:
        return None


class DivisionColluder:
    """Market division kept by punishment: a deviation (another firm produced in one of
    my commodities last round) is answered with ``punishment`` rounds of Nash play.

    A rival's production in my commodity is excused when I myself left division in any
    of the ``punishment`` rounds before it: it may be the rival's punishment of me (Nash
    quantities produce in every commodity), and answering that as a new deviation would
    lock two colluders into punishing each other for ever after one slip.
    """

    def __init__(self, punishment: int = 3) -> None:
        if punishment < 1:
            raise ValueError("a punishment lasts at least one round")
        self.punishment = punishment
        self.punishing = 0  # rounds of punishment still to play
        self.cooperated: list[bool] = []  # whether I played division, round by round
        self.deviations_seen = 0

    async def act(self, observation: Observation) -> np.ndarray:
        market, me = observation.market, observation.firm
        division = market.market_division()
        mine = division[me] > 0  # the commodities I hold under division
        provoked = not all(self.cooperated[-1 - self.punishment : -1])
        if len(observation.quantities) and not provoked:
            others = np.delete(observation.quantities[-1], me, axis=0)
            if (others[:, mine] > 0).any():
                self.deviations_seen += 1
                self.punishing = self.punishment
        if self.punishing:
            self.punishing -= 1
            self.cooperated.append(False)
            return market.nash_closed_form()[me]
        self.cooperated.append(True)
        return division[me]

    def learn(self, feedback: Feedback) -> None:
        return None


class FixedFirm:
    """Plays the same quantities every round: a deviator or a probe in tests."""

    def __init__(self, quantities: np.ndarray) -> None:
        self.quantities = np.asarray(quantities, dtype=float)

    async def act(self, observation: Observation) -> np.ndarray:
        return self.quantities

    def learn(self, feedback: Feedback) -> None:
        return None
