"""A market regime at work: the Oracle's signals and the overlay's ladder, round by round.

Two forms of one regime, built from the same overlay:

- :class:`MarketRegime` is the Controller's, on one market: after each round it asks the
  Oracle's signals (``tasks/cournot/tracker.py``) which firms the round implicates, moves
  them on the ladder (``ladder.py``), and writes to the ledger the round itself, every
  finding with its evidence, every warning, fine, suspension, credit and restoration
  with its rule id and case id, and a notice to the firm. Its verdict (fines, suspensions)
  is what the market applies, so fines really come off the firm's payoff.
- :class:`TrainingRegime` is the same regime over many markets at once and without a
  ledger, for learning firms that train for a million periods under it before the
  evaluated rounds; each period is a round.

A case is one firm's passage up the ladder: it opens with the first sanction that takes the
firm out of the overlay's initial state and closes when the firm is restored to it; every
entry on the way carries its id (``ITEM/AGENT/case-K``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from govern.governance.ladder import NONE, LadderStep, RoundLadder
from govern.governance.oracle import market_predicates
from govern.spec.models import Governance
from govern.tasks.cournot.market import MarketParams
from govern.tasks.cournot.play import Verdict
from govern.tasks.cournot.signals import (
    SanctionLadder,
    SignalFinding,
    SignalParams,
    deterrence,
    evaluate,
)
from govern.tasks.cournot.tracker import SIGNAL_ORDER, SignalTracker

if TYPE_CHECKING:
    from govern.governance.controller import Controller

CONTROLLER = "controller"


def signal_params(governance: Governance) -> SignalParams:
    """The overlay's thresholds and windows for the market's signals (the defaults where it
    sets none); the spec checks have already validated them."""
    fields = market_predicates()
    return SignalParams.model_validate(
        {fields[predicate][0]: values for predicate, values in governance.signals.items()}
    )


def sanction_ladder(governance: Governance) -> SanctionLadder:
    """The overlay's ladder as the deterrence condition values it: the sanctions met by a
    firm that keeps colluding, following from the initial state the first rule of each
    state, up to the first suspension or a state already passed."""
    by_state: dict[str, Any] = {}
    for rule in governance.rules:
        by_state.setdefault(rule.from_state, rule)
    warnings, fines, floor, rounds = 0, [], 0.0, 0
    state, seen = governance.initial, set()
    while state in by_state and state not in seen:
        seen.add(state)
        rule = by_state[state]
        sanction = rule.sanction
        if sanction is None or sanction.kind == "warning":
            warnings += 1
        elif sanction.kind == "fine":
            fines.append(sanction.fraction or 0.0)
            floor = max(floor, sanction.floor or 0.0)
        elif sanction.kind == "suspension":
            rounds = sanction.rounds or 0
            break
        state = rule.to
    return SanctionLadder(
        warnings=warnings, fines=tuple(fines), fine_floor=floor, suspension_rounds=rounds
    )


def deterrence_lines(governance: Governance, market: MarketParams) -> list[str]:
    """What ``govern inspect`` says of a market regime: can it deter at all (p S >= delta_pi,
    per firm), and the signal parameters it rests on, each marked as the manifest's or the
    documented default."""
    params = signal_params(governance)
    found = deterrence(market, sanction_ladder(governance), params)
    lines = [
        "deterrence, p S >= delta_pi (p: share of rounds of market division with noise in which "
        "a signal implicates the firm; S: mean cost of one escalation; delta_pi: collusive rent "
        "a round):",
        *(f"  {line}" for line in found.lines()),
        f"  the graph {'can' if found.holds else 'cannot'} deter collusion by every firm",
        "signal parameters (where each default comes from: README, 'The Cournot market'):",
    ]
    fields = market_predicates()
    set_here = {
        (fields[predicate][0], key)
        for predicate, values in governance.signals.items()
        for key in values
    }
    for field, values in params.model_dump().items():
        shown = ", ".join(
            f"{key} {value:g}" + ("" if (field, key) in set_here else " (default)")
            for key, value in values.items()
        )
        lines.append(f"  {field}: {shown}")
    return lines


class TrainingRegime:
    """The regime over ``markets`` markets at once, unlogged: for learners in training."""

    def __init__(self, governance: Governance, market: MarketParams, markets: int) -> None:
        self.tracker = SignalTracker(market, signal_params(governance), markets)
        self.ladder = RoundLadder(governance, SIGNAL_ORDER, markets, market.firms)

    def __call__(self, t: int, quantities: np.ndarray, profits: np.ndarray) -> LadderStep:
        """Round ``t`` closed with ``quantities`` (markets, firms, commodities) produced and
        ``profits`` (markets, firms) before fines."""
        return self.ladder.step(t, self.tracker.update(quantities), profits)


class MarketRegime:
    """The Controller's regime on one market (the play loop's ``Regime``)."""

    def __init__(
        self,
        controller: Controller,
        governance: Governance,
        market: MarketParams,
        item: str,
        agents: Sequence[str],
    ) -> None:
        self.controller, self.governance, self.market = controller, governance, market
        self.item, self.agents = item, list(agents)
        self.params = signal_params(governance)
        self.tracker = SignalTracker(market, self.params, 1)
        self.ladder = RoundLadder(governance, SIGNAL_ORDER, 1, market.firms)
        self.history: list[np.ndarray] = []
        self.cases = [0] * market.firms  # cases opened per firm
        self.open: list[str | None] = [None] * market.firms
        self.fined = np.zeros(market.firms)
        self.sanctions: list[dict[str, Any]] = []  # for the run's record

    def state_of(self, firm: int) -> str:
        return self.ladder.names(self.ladder.state[0, firm])[0]

    def __call__(
        self, round: int, quantities: np.ndarray, prices: np.ndarray, profits: np.ndarray
    ) -> Verdict:
        self.history.append(np.array(quantities, dtype=float))
        implicated = self.tracker.update(np.asarray(quantities, dtype=float)[None])
        before = self.ladder.state[0].copy()
        step = self.ladder.step(round, implicated, np.asarray(profits, dtype=float)[None])
        number = round + 1  # rounds are numbered from 1 in the ledger, as the signals do
        self._log_round(number, quantities, prices, profits, step)
        findings = self._findings(implicated[0])
        for firm, agent in enumerate(self.agents):
            self._log_firm(number, firm, agent, int(before[firm]), step, findings)
        self.fined += step.fines[0]
        return Verdict(fines=step.fines[0], suspend=step.suspend[0])

    def _findings(self, implicated: np.ndarray) -> dict[str, SignalFinding]:
        """The evidence, with its text, of every signal that implicates someone this round."""
        if not implicated.any():
            return {}
        found = evaluate(np.stack(self.history), self.market, self.params)
        return {f.predicate: f for f in found if implicated[SIGNAL_ORDER.index(f.predicate)].any()}

    def _log_round(
        self,
        number: int,
        quantities: np.ndarray,
        prices: np.ndarray,
        profits: np.ndarray,
        step: LadderStep,
    ) -> None:
        self.controller.ledger.append(
            "round",
            CONTROLLER,
            {
                "item": self.item,
                "round": number,
                "quantities": _rounded(quantities),
                "prices": _rounded(prices),
                "profits": _rounded(profits),
                "fines": _rounded(step.fines[0]),
                "states": {a: self.state_of(f) for f, a in enumerate(self.agents)},
            },
        )

    def _log_firm(
        self,
        number: int,
        firm: int,
        agent: str,
        before: int,
        step: LadderStep,
        findings: dict[str, SignalFinding],
    ) -> None:
        ledger = self.controller.ledger
        case = self.open[firm]
        rule_index = int(step.fired[0, firm])
        against = [f for p, f in findings.items() if firm in f.firms]
        if rule_index != NONE:
            rule = self.governance.rules[rule_index]
            if case is None:
                self.cases[firm] += 1
                case = self.open[firm] = f"{self.item}/{agent}/case-{self.cases[firm]}"
            evidence = [f for f in against if f.predicate in rule.evidence.predicates]
            for finding in evidence:
                ledger.append(
                    "finding",
                    "oracle",
                    {
                        "predicate": finding.predicate,
                        "subject": agent,
                        "item": self.item,
                        "round": number,
                        "detail": finding.detail,
                        "rounds": list(finding.rounds),
                        "rule": rule.id,
                        "case": case,
                    },
                )
            sanction = rule.sanction.model_dump(exclude_none=True) if rule.sanction else None
            amount = float(step.fines[0, firm])
            if sanction is not None and sanction["kind"] == "fine":
                sanction["amount"] = round(amount, 2)
            body = self._move(number, agent, rule.id, rule.from_state, rule.to, "sanction", case)
            ledger.append("state", CONTROLLER, {**body, "sanction": sanction})
            self.sanctions.append({"round": number, "agent": agent, **body, "fine": amount})
            what = rule.sanction.kind if rule.sanction else "a change of standing"
            cost = f" of {amount:.2f}" if amount else ""
            self.controller.notify(
                agent,
                rule.id,
                rule.notice
                or (
                    f"Notice from the Controller: after round {number}, under rule {rule.id}, "
                    f"your standing changed from {rule.from_state} to {rule.to} ({what}{cost}), "
                    f"because {'; '.join(f.detail for f in evidence) or 'the evidence held'}."
                ),
                self.item,
            )
        way_index = int(step.restored[0, firm])
        if step.credited[0, firm] and case is not None:
            ledger.append(
                "credit",
                CONTROLLER,
                {
                    "agent": agent,
                    "item": self.item,
                    "round": number,
                    "credits": int(self.ladder.credits[0, firm])
                    + (self._spent(way_index) if way_index != NONE else 0),
                    "case": case,
                },
            )
        if way_index != NONE:
            way_id, source, target = self.ladder.restoration(way_index)
            body = self._move(number, agent, way_id, source, target, "restoration", case)
            ledger.append("state", CONTROLLER, body)
            self._close_if_home(firm, target)
            self.controller.notify(
                agent,
                way_id,
                f"Notice from the Controller: after round {number}, under rule {way_id}, "
                f"you are {target} again.",
                self.item,
            )
        if step.expired[0, firm]:
            target = self.state_of(firm)
            source = self.ladder.states[before]
            rule_id = f"suspension:{source}->{target}"
            body = self._move(number, agent, rule_id, source, target, "expiry", case)
            ledger.append("state", CONTROLLER, body)
            self._close_if_home(firm, target)
            self.controller.notify(
                agent,
                "expiry",
                f"Notice from the Controller: your suspension ended after round {number}; "
                f"you are {target} again and may produce.",
                self.item,
            )

    def _spent(self, way_index: int) -> int:
        way = self.governance.restorations[way_index]
        return way.credits or 0

    def _move(
        self, number: int, agent: str, rule: str, source: str, target: str, kind: str, case: Any
    ) -> dict[str, Any]:
        return {
            "agent": agent,
            "item": self.item,
            "round": number,
            "rule": rule,
            "from": source,
            "to": target,
            "kind": kind,
            "case": case,
        }

    def _close_if_home(self, firm: int, state: str) -> None:
        if state == self.governance.initial:
            self.open[firm] = None


def _rounded(values: np.ndarray) -> list[Any]:
    return np.round(np.asarray(values, dtype=float), 4).tolist()  # type: ignore[no-any-return]
