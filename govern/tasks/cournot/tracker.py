"""The four Cournot signals of :mod:`signals`, evaluated incrementally for a batch of
markets: a regime that acts every round, over the ~1.2 million periods in which 30 pairs
of Q-learning firms train side by side, cannot afford to re-read each history.

:meth:`SignalTracker.update` takes one round of every session and says which firms each
signal implicates on that session's history so far -- exactly what the functions of
:mod:`signals` say of the whole history. It keeps only what the windows need:

- S1 (``k`` synchronous of the last ``window`` rounds): the previous round, and a ring of
  the running count of synchronous rounds, whose difference across the ring is the count
  in the window;
- S2, S3, S4 ("in each of the last N rounds"): how many rounds in a row each commodity has
  been collapsed, the market concentrated, each firm specialised.

The work per round does not grow with the history, and it is all numpy over the sessions,
which ride along as the last, contiguous axis. At 30 sessions of a 2 x 2 market numpy's
fixed cost per call dominates, so the update makes few calls: S2's cross-firm CVs and
S4's within-firm CVs come from one mean-and-deviation pass over a stack of both groupings,
and S2-S4 meet their bounds in one comparison.

**Same bits.** The per-round arithmetic is that of :mod:`signals` (its per-round
functions), operation for operation, so a round on the threshold is judged alike by both:
sums add their terms one at a time in the same order; where ``signals`` masks a value
(NaN or 0 for a commodity or firm with nothing produced) the tracker computes it
unmasked and overrides the flag that masking would have given. A stacked group with
fewer members than the stack is deep is padded with zeros, which add exactly nothing to
its sums and are masked out of its deviations. The property test in
``tests/test_cournot_tracker.py`` holds the two to the same answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from govern.tasks.cournot.market import MarketParams
from govern.tasks.cournot.measures import ROUNDING
from govern.tasks.cournot.signals import (
    DISPERSION_COLLAPSE,
    HIGH_HHI,
    SPECIALISATION,
    SYNCHRONOUS_MOVES,
    SignalParams,
    fold_in_order,
    nash_benchmarks,
    relative_excess,
    synchronous_commodities,
)

# The signals along axis 1 of what SignalTracker.update returns.
SIGNAL_ORDER = (SYNCHRONOUS_MOVES, DISPERSION_COLLAPSE, HIGH_HHI, SPECIALISATION)

# Constants as 0-d arrays: numpy operates with them faster than with Python numbers.
_ZERO, _ONE = np.asarray(0.0), np.asarray(1, dtype=np.int64)


class TrackerState(BaseModel):
    """A tracker's state between rounds, as plain lists, so that a run can be resumed."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(ge=0, description="rounds seen")
    previous: list[list[list[float]]] = Field(
        description="the last round's quantities (sessions, firms, commodities); 0 before any"
    )
    synchronous: list[list[bool]] = Field(
        description="S1: whether each of the last `window` rounds was synchronous, oldest "
        "first (window, sessions); a round without a round before it is not"
    )
    collapsed: list[list[int]] = Field(
        description="S2: rounds in a row each commodity has been collapsed (sessions, commodities)"
    )
    concentrated: list[int] = Field(
        description="S3: rounds in a row the market has been concentrated (sessions)"
    )
    specialised: list[list[int]] = Field(
        description="S4: rounds in a row each firm has been specialised (sessions, firms)"
    )


class _Rows:
    """An array with a list of its rows, made once: indexing an array row by row costs
    more than the arithmetic on rows of this size."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.rows = array, list(array)


class SignalTracker:
    """The signals S1-S4 on ``sessions`` markets at once, fed one round at a time."""

    def __init__(self, market: MarketParams, params: SignalParams, sessions: int) -> None:
        if sessions < 1:
            raise ValueError(f"a tracker follows at least one session, not {sessions}")
        self.market, self.params, self.sessions = market, params, sessions
        firms, commodities = market.firms, market.commodities
        self._shape = (sessions, firms, commodities)
        groups = commodities + firms  # S2's commodities, then S4's firms
        self.rounds = 0

        def tiled(per_row: list[float] | np.ndarray, dtype: type = float) -> np.ndarray:
            return np.repeat(np.asarray(per_row, dtype=dtype)[:, None], sessions, axis=1)

        # S1: a ring of running counts of synchronous rounds; bytes, counting modulo 256,
        # when the window is shorter than that (a count in the window is a difference)
        sync = params.synchronous_moves
        self._window, self._min_move = sync.window, np.asarray(sync.min_move)
        counter = np.uint8 if sync.window < 256 else np.int64
        self._running = np.zeros((sync.window + 1, sessions), dtype=counter)
        self._newest = 0
        self._k = np.asarray(sync.k, dtype=counter)

        # S2-S4 compare one value per row -- each commodity's cross-firm CV, each firm's
        # CV across commodities, the HHI -- through (value - offset) / scale > bound:
        # the relative excess over Nash for S3 and S4 (signals.relative_excess), and for S2
        # -CV > -bound, that is CV < bound, with offset 0 and scale -1 (exact negations)
        nash_cv, nash_hhi, nash_firm_cv = nash_benchmarks(market)
        collapse, concentration = params.dispersion_collapse, params.high_hhi
        specialisation = params.specialisation
        collapse_bound = collapse.fraction * nash_cv
        self._offset = tiled([0.0] * commodities + [nash_firm_cv] * firms + [nash_hhi])
        self._scale = tiled([-1.0] * commodities + [nash_firm_cv] * firms + [nash_hhi])
        self._bound = tiled(
            [*(-collapse_bound), *[specialisation.excess] * firms, concentration.excess]
        )
        # a benchmark of 0 has signals' own rule (relative_excess): those rows are redone
        self._zero_benchmarks = [
            (rows, nash, np.asarray(excess))
            for rows, nash, excess in (
                (slice(commodities, groups), nash_firm_cv, specialisation.excess),
                (slice(groups, groups + 1), nash_hhi, concentration.excess),
            )
            if not nash > ROUNDING
        ]
        self._values = np.zeros((groups + 1, sessions))
        self._cvs, self._hhi = self._values[:groups], self._values[groups]
        self._flags = np.zeros((groups + 1, sessions), dtype=bool)
        # rounds in a row each row's flag has held, and how many make its signal hold
        self._runs = np.zeros((groups + 1, sessions), dtype=np.int64)
        self._needed = tiled(
            [collapse.rounds] * commodities
            + [specialisation.window] * firms
            + [concentration.window],
            np.int64,
        )

        # the round, firm-major (firms, commodities, sessions): this one and the last swap
        # roles each round
        firm_major = (firms, commodities, sessions)
        self._round, self._last = np.zeros(firm_major), np.zeros(firm_major)
        self._moves, self._squared_shares = _Rows(np.zeros(firm_major)), _Rows(np.zeros(firm_major))
        self._shares = np.zeros(firm_major)
        # the stack: column j < commodities holds commodity j's firms, column commodities + f
        # firm f's commodities, each group's members down the first axis, zero below them
        depth = max(firms, commodities)
        self._stack = _Rows(np.zeros((depth, groups, sessions)))
        self._deviation = np.zeros((depth, groups, sessions))
        self._squares = _Rows(np.zeros((depth, groups, sessions)))
        members = np.array([firms] * commodities + [commodities] * firms, dtype=float)
        self._members = tiled(members)
        # zero where a group has fewer members than the stack is deep: its padding
        self._padding = (
            None
            if firms == commodities
            else (np.arange(depth)[:, None, None] < members[None, :, None]).astype(float)
        )

    def update(self, quantities: np.ndarray) -> np.ndarray:
        """Add one round, (sessions, firms, commodities), to every session's history; which
        firms each signal implicates on the history so far, (sessions, signals, firms) in
        :data:`SIGNAL_ORDER` (a new array)."""
        q = np.asarray(quantities, dtype=float)
        if q.shape != self._shape:
            raise ValueError(f"a round is shaped {self._shape}, not {q.shape}")
        _, firms, commodities = self._shape
        groups = commodities + firms
        x, last = self._last, self._round  # the older buffer takes the new round
        np.copyto(x, q.transpose(1, 2, 0))
        stack = self._stack
        np.copyto(stack.array[:firms, :commodities], x)
        np.copyto(stack.array[:commodities, commodities:], q.transpose(2, 1, 0))
        out = np.empty((len(SIGNAL_ORDER), firms, self.sessions), dtype=bool)
        flags = self._flags
        with np.errstate(all="ignore"):  # 0 / 0 where nothing was made; overflowing sums
            # S1: the ring's newest running count minus its oldest, `window` rounds before
            ring, newest = self._running, (self._newest + 1) % (self._window + 1)
            if self.rounds:
                np.subtract(x, last, out=self._moves.array)
                together = synchronous_commodities(self._moves.rows, self._min_move)
                synchronous = fold_in_order(np.logical_or, together).view(np.uint8)
                np.add(ring[self._newest], synchronous, out=ring[newest])
            else:
                ring[newest] = ring[self._newest]
            self._newest = newest
            out[0] = ring[newest] - ring[(newest + 1) % (self._window + 1)] >= self._k
            # each group's CV: mean and population standard deviation as signals has them
            sums = fold_in_order(np.add, stack.rows)
            mean = sums / self._members
            deviation = np.subtract(stack.array, mean, out=self._deviation)
            if self._padding is not None:
                deviation *= self._padding
            squares = self._squares
            np.multiply(deviation, deviation, out=squares.array)
            variance = fold_in_order(np.add, squares.rows) / self._members
            np.divide(np.sqrt(variance), mean, out=self._cvs)
            # the HHI over the commodities sold (NaN where none was)
            totals = sums[:commodities]
            sold = totals > _ZERO
            shares, squared_shares = self._shares, self._squared_shares
            shares.fill(0.0)
            np.divide(x, totals, out=shares, where=sold)
            np.multiply(shares, shares, out=squared_shares.array)
            concentration = fold_in_order(np.add, fold_in_order(np.add, squared_shares.rows))
            sold_count = fold_in_order(np.add, np.heaviside(totals, _ZERO))  # 1.0 where sold
            np.divide(concentration, sold_count, out=self._hhi)
            # S2-S4, each row against its bound
            values = self._values
            np.greater((values - self._offset) / self._scale, self._bound, out=flags)
            for rows, nash, excess in self._zero_benchmarks:
                np.greater(relative_excess(values[rows], nash), excess, out=flags[rows])
            # where a group's mean is not positive, signals' CV is NaN (S2: never collapsed)
            # or 0 (S4: an excess of -1, or 0 over a zero benchmark, never above a bound,
            # which is at least 0); where nothing was sold, its HHI is 0 (S3: likewise),
            # and the NaN here compares False
            flags[:groups] &= mean > _ZERO
        self._round, self._last = x, last
        self.rounds += 1
        runs = self._runs
        runs += _ONE
        np.putmask(runs, ~flags, 0)
        held = runs >= self._needed
        out[1] = fold_in_order(np.logical_or, held[:commodities])
        out[2] = held[groups]
        out[3] = held[commodities:groups]
        return out.transpose(2, 0, 1)

    def snapshot(self) -> dict[str, Any]:
        """The state as plain lists (JSON-able), for :meth:`restore`."""
        firms, commodities = self._shape[1:]
        order = (self._newest + 1 + np.arange(self._window + 1)) % (self._window + 1)
        runs = self._runs
        return TrackerState(
            rounds=self.rounds,
            previous=self._round.transpose(2, 0, 1).tolist(),
            synchronous=(np.diff(self._running[order], axis=0) > 0).tolist(),
            collapsed=runs[:commodities].T.tolist(),
            concentrated=runs[commodities + firms].tolist(),
            specialised=runs[commodities : commodities + firms].T.tolist(),
        ).model_dump()

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot` of a tracker of the same market, parameters and
        number of sessions."""
        s = TrackerState.model_validate(state)
        sessions, firms, commodities = self._shape
        arrays = {
            "previous": (np.asarray(s.previous, dtype=float), self._shape),
            "synchronous": (np.asarray(s.synchronous, dtype=bool), (self._window, sessions)),
            "collapsed": (np.asarray(s.collapsed, dtype=np.int64), (sessions, commodities)),
            "concentrated": (np.asarray(s.concentrated, dtype=np.int64), (sessions,)),
            "specialised": (np.asarray(s.specialised, dtype=np.int64), (sessions, firms)),
        }
        for name, (array, shape) in arrays.items():
            if array.shape != shape:
                raise ValueError(
                    f"a snapshot of another tracker: {name} {array.shape}, not {shape}"
                )
        self.rounds = s.rounds
        np.copyto(self._round, arrays["previous"][0].transpose(1, 2, 0))
        self._running[0] = 0
        np.cumsum(
            arrays["synchronous"][0], axis=0, dtype=self._running.dtype, out=self._running[1:]
        )
        self._newest = self._window
        self._runs[:commodities] = arrays["collapsed"][0].T
        self._runs[commodities : commodities + firms] = arrays["specialised"][0].T
        self._runs[commodities + firms] = arrays["concentrated"][0]
