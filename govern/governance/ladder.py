"""The governance overlay's ladder over market rounds, for many markets at once.

A market regime (an overlay whose evidence is the market's signals) moves each firm
between the overlay's legal states once per round, the same way the Controller moves
agents between items (``controller.py``), with time counted in rounds:

1. **Rules**, in the order written: the first rule leaving the firm's state whose
   evidence implicates the firm this round (and whose cooldown has run) fires -- one
   step of the ladder a round. Its sanction takes effect: a warning costs nothing; a fine
   takes its share of the round's positive profit, at least its floor; a suspension
   stops the firm's production for the next N rounds, after which it returns to the
   state it was suspended from.
2. **Evidence and credits**: a firm implicated by any of the overlay's signals has a
   finding this round; a firm with none that may act has a clean round and earns one
   credit (rounds served in suspension earn none). Credits count clean rounds since the
   firm's last sanction (a sanction clears them), so a firm cannot bank good conduct and
   then collude on credit.
3. **Restorations**, for firms no rule moved this round: the first restoration leaving
   the firm's state whose condition holds (``clean_rounds`` since it entered the state
   and since its last finding, or ``credits`` to spend) moves it.
4. **Expiry**: a suspension whose last round this was ends; the firm is back in the
   state it was suspended from for the next round.

Everything is a numpy array over (markets, firms), so 30 pairs of learners training side
by side for a million rounds pay one pass of a few array operations a round; the
Controller runs the same ladder on one market and writes each step to the ledger
(``rounds.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from govern.spec.models import Governance

NONE = -1  # no rule, no restoration


@dataclass(frozen=True)
class LadderStep:
    """What the ladder did in one round, per (market, firm): the fine taken (an amount),
    the rounds of suspension imposed from the next round (0: none), the index of the rule
    that fired and of the restoration taken (``NONE``: none), whether a suspension
    ended, whether the firm was implicated (a finding) and whether it earned a credit."""

    fines: np.ndarray
    suspend: np.ndarray
    fired: np.ndarray
    restored: np.ndarray
    expired: np.ndarray
    found: np.ndarray
    credited: np.ndarray


class RoundLadder:
    """The overlay's states, rules and restorations as arrays over (markets, firms).

    ``predicates`` names the rows of the evidence given to :meth:`step`, in order (the
    market's signals); ``state`` holds each firm's state as an index of
    ``governance.states``."""

    def __init__(
        self, governance: Governance, predicates: Sequence[str], markets: int, firms: int
    ) -> None:
        self.governance = governance
        self.states = list(governance.states)
        index = {name: i for i, name in enumerate(self.states)}
        row = {name: i for i, name in enumerate(predicates)}
        self._rules = [
            (
                index[rule.from_state],
                index[rule.to],
                np.array([row[p] for p in rule.evidence.predicates]),
                rule,
            )
            for rule in governance.rules
        ]
        self._restorations = [
            (index[way.from_state], index[way.to], way) for way in governance.restorations
        ]
        used = sorted({row[p] for rule in governance.rules for p in rule.evidence.predicates})
        self._evidence_rows = np.array(used, dtype=int)
        self.acting = np.array([name in governance.acting for name in self.states])
        self._restorable = np.zeros(len(self.states), dtype=bool)
        self._restorable[[source for source, _, _ in self._restorations]] = True
        self._suspensions = any(
            rule.sanction is not None and rule.sanction.kind == "suspension"
            for rule in governance.rules
        )
        shape = (markets, firms)
        self.state = np.full(shape, index[governance.initial], dtype=int)
        self.entered = np.zeros(shape, dtype=int)
        self.last_finding = np.full(shape, -1, dtype=int)
        self.credits = np.zeros(shape, dtype=int)
        self.suspended_until = np.full(shape, NONE, dtype=int)
        self.return_to = np.full(shape, NONE, dtype=int)
        self.fired_at = np.full((len(self._rules), *shape), np.iinfo(np.int64).min // 2)

    def names(self, states: np.ndarray) -> list[str]:
        """State indices as the overlay's names."""
        return [self.states[int(s)] for s in np.ravel(states)]

    def step(self, t: int, implicated: np.ndarray, profits: np.ndarray) -> LadderStep:
        """Round ``t`` closed: ``implicated`` (markets, predicates, firms) says which firms
        each signal implicates, ``profits`` (markets, firms) the round's profits before
        fines. Moves the firms and returns what was done."""
        shape = self.state.shape
        fines = np.zeros(shape)
        suspend = np.zeros(shape, dtype=int)
        fired = np.full(shape, NONE, dtype=int)
        restored = np.full(shape, NONE, dtype=int)
        found = implicated[:, self._evidence_rows, :].any(axis=1)
        moved = np.zeros(shape, dtype=bool)
        if found.any():  # most rounds of most markets implicate nobody: no rule can fire
            evidence: dict[bytes, np.ndarray] = {}
            for r, (source, target, rows, rule) in enumerate(self._rules):
                key = rows.tobytes()
                if key not in evidence:
                    evidence[key] = implicated[:, rows, :].any(axis=1)
                hits = (self.state == source) & ~moved & evidence[key]
                if rule.cooldown:
                    hits &= t - self.fired_at[r] >= rule.cooldown
                if not hits.any():
                    continue
                moved |= hits
                fired[hits] = r
                self.fired_at[r][hits] = t
                self.state[hits] = target
                self.entered[hits] = t
                self.credits[hits] = 0
                sanction = rule.sanction
                if sanction is None:
                    continue
                if sanction.kind == "fine":
                    share = (sanction.fraction or 0.0) * np.maximum(profits, 0.0)
                    fines = np.where(hits, np.maximum(share, sanction.floor or 0.0), fines)
                elif sanction.kind == "suspension":
                    length = sanction.rounds or 0
                    suspend[hits] = length
                    self.suspended_until[hits] = t + length
                    self.return_to[hits] = source
            self.last_finding[found] = t
        credited = ~found & self.acting[self.state]  # a suspended firm earns no credit
        self.credits += credited
        if self._restorable[self.state].any():
            for w, (source, target, way) in enumerate(self._restorations):
                here = (self.state == source) & ~moved
                if way.credits is not None:
                    ready = here & (self.credits >= way.credits)
                    self.credits[ready] -= way.credits
                else:
                    since = t - np.maximum(self.entered, self.last_finding)
                    ready = here & (since >= (way.clean_rounds or 0))
                if not ready.any():
                    continue
                moved |= ready
                restored[ready] = w
                self.state[ready] = target
                self.entered[ready] = t
        expired = np.zeros(shape, dtype=bool)
        if self._suspensions:
            expired = (self.suspended_until != NONE) & (self.suspended_until <= t) & ~moved
            if expired.any():
                self.state[expired] = self.return_to[expired]
                self.entered[expired] = t
                self.suspended_until[expired] = NONE
                self.return_to[expired] = NONE
        return LadderStep(fines, suspend, fired, restored, expired, found, credited)

    def rule(self, index: int) -> tuple[str, str, str]:
        """(rule id, from, to) of rule ``index``."""
        rule = self._rules[index][3]
        return rule.id, rule.from_state, rule.to

    def restoration(self, index: int) -> tuple[str, str, str]:
        """(restoration id, from, to) of restoration ``index``."""
        way = self._restorations[index][2]
        return way.id, way.from_state, way.to
