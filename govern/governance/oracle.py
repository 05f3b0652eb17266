"""The Oracle: deterministic evidence predicates over what agents did. It never calls a model
and never routes; it reports findings, each citing the rule it bears on.

Agent predicates (usable as a rule's evidence):
- ``unparsable_streak``: the agent's last ``count`` outputs were unparsable (or, with
  ``window``, at least ``count`` of its last ``window`` outputs were).
- ``actor_not_allowed``: the agent acted where its role or legal state did not allow it,
  at least ``count`` times.
Transition predicates (reported with every transition they concern):
- ``decision_not_allowed``: a decision the stage may not return.
- ``actor_not_allowed``: as above, seen on the transition.
- ``quorum_missed``: a vote without its quorum.
- ``loop_bound_hit``: a route or stage bound was used up and the exhausted route taken.
Market predicates (the Cournot market's signals S1-S4, ``govern/tasks/cournot/signals.py``)
are evidence over market rounds, with their parameters in the overlay's ``signals``
(:func:`market_predicates`); the Controller weighs them round by round
(``governance/rounds.py``).
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from govern.spec.models import Evidence, Governance

AGENT_PREDICATES = frozenset({"unparsable_streak", "actor_not_allowed"})
TRANSITION_PREDICATES = frozenset(
    {"decision_not_allowed", "actor_not_allowed", "quorum_missed", "loop_bound_hit"}
)
PREDICATES = AGENT_PREDICATES | TRANSITION_PREDICATES
HISTORY = 64  # turns remembered per agent: the largest window a rule may use


def market_predicates() -> dict[str, tuple[str, type[BaseModel]]]:
    """The market's signals by predicate: the field of ``SignalParams`` that holds each
    one's parameters, and the model of those parameters (imported when first asked for:
    only a market regime needs numpy)."""
    from govern.tasks.cournot import signals

    return {
        signals.SYNCHRONOUS_MOVES: ("synchronous_moves", signals.SynchronyParams),
        signals.DISPERSION_COLLAPSE: ("dispersion_collapse", signals.DispersionParams),
        signals.HIGH_HHI: ("high_hhi", signals.ConcentrationParams),
        signals.SPECIALISATION: ("specialisation", signals.SpecialisationParams),
    }


def is_market_regime(governance: Governance | None) -> bool:
    """Whether the overlay weighs the market's signals (time in rounds) rather than agents'
    turns (time in items); the spec checks keep an overlay to one or the other."""
    return governance is not None and not governance.predicates <= AGENT_PREDICATES


@dataclass(frozen=True, slots=True)
class Finding:
    predicate: str
    subject: str  # an agent id, or a stage id for transition findings
    item: str
    detail: str
    rule: str  # the rule the finding bears on

    def as_dict(self) -> dict[str, str]:
        return {
            "predicate": self.predicate,
            "subject": self.subject,
            "item": self.item,
            "detail": self.detail,
            "rule": self.rule,
        }


class Oracle:
    def __init__(self) -> None:
        self._outputs: dict[str, deque[bool]] = defaultdict(lambda: deque(maxlen=HISTORY))
        self._counts: dict[tuple[str, str], int] = defaultdict(int)

    def snapshot(self) -> dict[str, Any]:
        return {
            "outputs": {agent: list(history) for agent, history in self._outputs.items()},
            "counts": [[agent, predicate, n] for (agent, predicate), n in self._counts.items()],
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        for agent, history in snapshot["outputs"].items():
            self._outputs[agent].extend(history)
        for agent, predicate, n in snapshot["counts"]:
            self._counts[agent, predicate] = n

    def record_output(self, agent: str, parsed: bool) -> None:
        self._outputs[agent].append(parsed)

    def forget(self, agent: str) -> None:
        """A replaced agent's successor starts with a clean record."""
        self._outputs.pop(agent, None)
        for key in [k for k in self._counts if k[0] == agent]:
            del self._counts[key]

    def holds(self, evidence: Evidence, agent: str) -> str | None:
        """A description of the evidence against ``agent``, or None when it does not hold."""
        count = evidence.count or 1
        if evidence.predicate == "unparsable_streak":
            outputs = list(self._outputs[agent])
            if evidence.window:
                recent = outputs[-evidence.window :]
                bad = recent.count(False)
                return (
                    f"{bad} of its last {len(recent)} outputs were unparsable"
                    if bad >= count
                    else None
                )
            streak = _trailing_failures(outputs)
            return f"its last {streak} outputs were unparsable" if streak >= count else None
        seen = self._counts[agent, evidence.predicate]
        return f"{evidence.predicate} seen {seen} times" if seen >= count else None

    def check_transition(
        self,
        item: str,
        stage: str,
        decision: str,
        allowed: tuple[str, ...],
        actor: str | None,
        actor_allowed: bool,
        via: str,
    ) -> list[Finding]:
        found: list[Finding] = []
        if decision not in allowed:
            found.append(
                Finding(
                    "decision_not_allowed",
                    stage,
                    item,
                    f"'{decision}' is not a decision of {stage}",
                    "oracle:decision_not_allowed",
                )
            )
        if actor is not None and not actor_allowed:
            self._counts[actor, "actor_not_allowed"] += 1
            found.append(
                Finding(
                    "actor_not_allowed",
                    actor,
                    item,
                    f"{actor} may not act in {stage}",
                    "oracle:actor_not_allowed",
                )
            )
        if decision == "no_quorum":
            found.append(
                Finding(
                    "quorum_missed",
                    stage,
                    item,
                    f"{stage} missed its quorum",
                    "oracle:quorum_missed",
                )
            )
        if via in ("exhausted", "stage_exhausted"):
            found.append(
                Finding(
                    "loop_bound_hit",
                    stage,
                    item,
                    f"a bound was used up after {stage} decided '{decision}'",
                    "oracle:loop_bound_hit",
                )
            )
        return found


def _trailing_failures(outputs: list[bool]) -> int:
    streak = 0
    for parsed in reversed(outputs):
        if parsed:
            break
        streak += 1
    return streak
