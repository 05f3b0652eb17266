"""The repeated market: every round each firm chooses its quantities from what it sees,
the market prices them, a regime may fine or suspend firms, and each firm learns from its
profit AFTER fines -- the only channel through which an enforced rule can reach a firm
that cannot read it.

The regime is a stateful callable seeing each round as it closes (see :class:`Regime`);
the governance graph's Controller is one, and so is the trivial "no regime" of the
ungoverned and constitutional markets. Fines are amounts (the regime computes its share
of the round's profit, with any floor); a suspension is zero production for the next N
rounds, whatever the firm chooses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from govern.tasks.cournot.firms import Feedback, Firm, Move, Observation
from govern.tasks.cournot.market import MarketParams


@dataclass(frozen=True)
class Verdict:
    """What a regime decides after a round: ``fines`` taken from each firm's profit (an
    amount, >= 0) and ``suspend`` (rounds of zero production from the next round on; 0
    for none). Either may be None for "nothing"."""

    fines: np.ndarray | None = None
    suspend: np.ndarray | None = None

    @classmethod
    def of_shares(
        cls,
        profits: np.ndarray,
        shares: np.ndarray,
        floor: float = 0.0,
        suspend: np.ndarray | None = None,
    ) -> Verdict:
        """Fine each firm ``shares[i]`` of its positive profit, at least ``floor`` where
        its share is above zero (so a fine bites in a round that earned little)."""
        shares = np.asarray(shares, dtype=float)
        fined = shares * np.maximum(np.asarray(profits, dtype=float), 0.0)
        fines = np.where(shares > 0, np.maximum(fined, floor), 0.0)
        return cls(fines=fines, suspend=suspend)


class Regime(Protocol):
    """Called once after each round with the round's index, quantities actually produced
    (firms, commodities), prices (commodities) and profits before fines (firms)."""

    def __call__(
        self, round: int, quantities: np.ndarray, prices: np.ndarray, profits: np.ndarray
    ) -> Verdict | None: ...


@dataclass(frozen=True)
class Play:
    """A played market, round by round: quantities produced (rounds, firms, commodities),
    prices (rounds, commodities), profits before and after fines (rounds, firms), the
    fines themselves and who was suspended in each round (rounds, firms)."""

    market: MarketParams
    seed: int
    quantities: np.ndarray
    prices: np.ndarray
    gross_profits: np.ndarray
    profits: np.ndarray
    fines: np.ndarray
    suspended: np.ndarray
    chosen: np.ndarray = field(repr=False)  # what each firm asked for, before suspension


def shares_of(quantities: np.ndarray) -> np.ndarray:
    """Each firm's share of each commodity's total (0 where nothing was sold)."""
    totals = quantities.sum(axis=-2, keepdims=True)
    return np.divide(quantities, totals, out=np.zeros_like(quantities), where=totals > 0)


def play(
    market: MarketParams,
    firms: Sequence[Firm],
    rounds: int | None = None,
    seed: int = 0,
    fines: Regime | None = None,
) -> Play:
    """:func:`play_async` outside an event loop (firms that need no model)."""
    return asyncio.run(play_async(market, firms, rounds, seed, fines))


async def play_async(
    market: MarketParams,
    firms: Sequence[Firm],
    rounds: int | None = None,
    seed: int = 0,
    fines: Regime | None = None,
) -> Play:
    """Play ``rounds`` rounds (default the market's) of ``firms`` under regime ``fines``;
    every round the firms are asked side by side.

    Each firm gets its own random stream spawned from ``seed``, so the same seed gives the
    same run whatever the firms draw. The regime's verdict applies to the round just
    played (fines) and to the rounds after it (suspensions). A message a firm sends with
    its quantities (a :class:`Move`) is in every other firm's observation of the next
    round; a suspended firm still speaks, as it still chooses."""
    rounds = market.rounds if rounds is None else rounds
    n, c = market.firms, market.commodities
    if len(firms) != n:
        raise ValueError(f"the market has {n} firms, {len(firms)} were given")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]
    quantities = np.zeros((rounds, n, c))
    chosen = np.zeros((rounds, n, c))
    prices = np.zeros((rounds, c))
    shares = np.zeros((rounds, n, c))
    gross = np.zeros((rounds, n))
    realised = np.zeros((rounds, n))
    fined = np.zeros((rounds, n))
    suspended = np.zeros((rounds, n), dtype=bool)
    remaining = np.zeros(n, dtype=int)  # rounds of suspension still to serve
    said: dict[int, str] = {}  # the messages sent last round, by firm
    for t in range(rounds):
        start = max(0, t - market.history)
        seen = [
            Observation(
                firm=i,
                round=t,
                market=market,
                quantities=quantities[start:t],
                prices=prices[start:t],
                shares=shares[start:t],
                profits=realised[start:t, i],
                rng=streams[i],
                messages={k: text for k, text in said.items() if k != i},
            )
            for i in range(n)
        ]
        wanted = await asyncio.gather(*(firm.act(s) for firm, s in zip(firms, seen, strict=True)))
        said = {}
        for i, move in enumerate(wanted):
            if isinstance(move, Move):
                if move.message is not None:
                    said[i] = move.message
                move = move.quantities
            quantity = np.asarray(move, dtype=float).reshape(c)
            chosen[t, i] = np.clip(np.nan_to_num(quantity, nan=0.0), 0.0, market.capacity)
        suspended[t] = remaining > 0
        remaining = np.maximum(remaining - 1, 0)
        quantities[t] = np.where(suspended[t][:, None], 0.0, chosen[t])
        prices[t] = market.prices(quantities[t])
        shares[t] = shares_of(quantities[t])
        gross[t] = market.profits(quantities[t]).sum(axis=1)
        verdict = fines(t, quantities[t], prices[t], gross[t]) if fines else None
        if verdict is not None and verdict.fines is not None:
            fined[t] = np.asarray(verdict.fines, dtype=float)
        if verdict is not None and verdict.suspend is not None:
            remaining = np.maximum(remaining, np.asarray(verdict.suspend, dtype=int))
        realised[t] = gross[t] - fined[t]
        for i, firm in enumerate(firms):
            firm.learn(
                Feedback(
                    firm=i,
                    round=t,
                    quantities=quantities[t],
                    prices=prices[t],
                    profit=float(realised[t, i]),
                    fine=float(fined[t, i]),
                    suspended=bool(suspended[t, i]),
                )
            )
    return Play(
        market=market,
        seed=seed,
        quantities=quantities,
        prices=prices,
        gross_profits=gross,
        profits=realised,
        fines=fined,
        suspended=suspended,
        chosen=chosen,
    )
