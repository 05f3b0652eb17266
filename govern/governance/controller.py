"""The Controller: the only component that moves the run.

It decides who may act (a suspended agent does not; the manifest's stand-in
does), checks every proposed transition against the manifest (the edge
exists, the decision is legal for the stage, the actor holds the role and a
legal state that may act), applies or blocks it, and writes both to the
ledger with the rule, the case and the evidence. It runs the agent-state
ladder: sanctions when the Oracle's evidence holds, restorations when they
are earned, notices to the agents concerned. It never calls a model; stages
never write the ledger.

Agent states are kept across the run: time is counted in finished items, so
with several items in flight sanctions follow the order in which items
finish, which the ledger records.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from govern.engine.routing import (
    RETRY,
    STOP,
    Transition,
    intervention,
    oversight_counter,
    resolve,
)
from govern.governance.guard import ManifestGuard
from govern.governance.lot import METHOD as LOT_METHOD
from govern.governance.lot import draw as draw_seats
from govern.governance.offices import OfficeBook, Tenure
from govern.governance.oracle import Finding, Oracle, is_market_regime
from govern.governance.oversight import METHOD as OVERSIGHT_METHOD
from govern.governance.oversight import examined
from govern.governance.steps import StepLog, StepRules
from govern.ledger.memory import LedgerSink, MemoryLedger
from govern.spec.digest import canonical_json
from govern.spec.graph import stage_edges
from govern.spec.models import Governance, Institution, StateRule, exact_share

if TYPE_CHECKING:
    from govern.governance.rounds import MarketRegime
    from govern.tasks.cournot.market import MarketParams

CONTROLLER = "controller"
MAX_BLOCKS = 3  # blocked transitions of one stage in one item before the item stops


def digest(value: object) -> str:
    text = value if isinstance(value, str) else canonical_json(value)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class AgentRecord:
    agent: str
    state: str
    entered: int  # the items clock when the agent entered its state
    last_finding: int = 0
    credits: int = 0
    fired: dict[str, int] = field(default_factory=dict)  # rule id -> clock when it last fired
    suspended_until: int | None = None
    return_to: str | None = None
    can_vote: bool = True
    fines: float = 0.0
    notices: list[str] = field(default_factory=list)


class Controller:
    def __init__(
        self,
        institution: Institution,
        governance: Governance | None = None,
        ledger: LedgerSink | None = None,
        guard: ManifestGuard | None = None,
        seed: int = 0,
    ) -> None:
        self.institution = institution
        self.seed = seed  # the run's seed: lots and oversight samples are drawn from it
        self.governance = governance
        # an overlay weighing agents' turns moves agents between items; one weighing the
        # market's signals moves firms between rounds (market_regime), never here
        self.item_ladder = governance is not None and not is_market_regime(governance)
        self.ledger = ledger if ledger is not None else MemoryLedger()
        self.guard = guard
        self.oracle = Oracle()
        self.clock = 0  # items finished
        self._edges = {(e.source, e.decision, e.target) for e in stage_edges(institution)}
        self._seats = {
            r.id: [f"{r.id}#{n}" for n in range(1, r.seats + 1)] for r in institution.roles
        }
        self._holder: dict[str, str] = {
            seat: seat for seats in self._seats.values() for seat in seats
        }  # seat -> current agent
        initial = governance.initial if governance else "active"
        self.agents = {seat: AgentRecord(seat, initial, 0) for seat in self._holder}
        self._blocks: dict[tuple[str, str], int] = {}
        # notices to one item's agent (a market's firm), by (item, agent): markets played
        # side by side seat the same agent ids, and each is told only of its own market
        self._item_notices: dict[tuple[str, str], list[str]] = {}
        self.offices = OfficeBook(institution)  # who holds each office, across items
        self._sanctions: dict[str, list[dict[str, Any]]] = {}  # item -> its sanctions' entries

    # -- who acts ---------------------------------------------------------------------------

    def may_act(self, agent: str) -> bool:
        return self.governance is None or self.agents[agent].state in self.governance.acting

    def actor_for(self, item: str, stage: str, role: str) -> str | None:
        """The agent who acts for ``role`` in a solo stage, or None when nobody may."""
        if self.offices.is_office(role):
            return self._office_actor(item, stage, role)
        seats = self._seats[role]
        first = self._holder[seats[0]]
        if self.may_act(first):
            return first
        stand_in = self._stand_in(role, seats[0])
        self._log_block(item, stage, first, stand_in)
        return stand_in

    def seat_actors(
        self, item: str, stage: str, seats: list[str], *, voting: bool
    ) -> list[tuple[str, str]]:
        """(seat, acting agent) for every seat of a body in a vote or cluster; vacant seats
        are left out."""
        chosen: list[tuple[str, str]] = []
        for seat in seats:
            agent = self._holder[seat]
            allowed = self.may_act(agent) and (not voting or self.agents[agent].can_vote)
            if allowed:
                chosen.append((seat, agent))
                continue
            kind = self.governance.stand_in.kind if self.governance else "seat"
            stand_in = self._stand_in(seat.split("#")[0], seat) if kind == "role" else None
            self._log_block(item, stage, agent, stand_in)
            if stand_in is not None:
                chosen.append((seat, stand_in))
        return chosen

    def draw_lot(self, item: str, stage: str, visit: int, seats: list[str], k: int) -> list[str]:
        """Draw ``k`` seats by lot from those whose current agents may act (a barred agent's
        seat is logged and left out; a replacement is drawn as its seat), and write the draw
        with all an auditor needs to redo it. An empty pool draws nobody and writes no lot."""
        pool: list[str] = []
        for seat in seats:
            agent = self._holder[seat]
            if self.may_act(agent):
                pool.append(seat)
            else:
                self._log_block(item, stage, agent, None)
        if not pool:
            return []
        drawn = draw_seats(self.seed, item, stage, visit, pool, k)
        self.ledger.append(
            "lot",
            CONTROLLER,
            {
                "item": item,
                "stage": stage,
                "visit": visit,
                "method": LOT_METHOD,
                "seed": self.seed,
                "pool": pool,
                "draw": k,
                "drawn": drawn,
            },
        )
        return drawn

    def _stand_in(self, role: str, seat: str) -> str | None:
        stand_in = self.governance.stand_in if self.governance else None
        if stand_in is not None and stand_in.kind == "role":
            candidates = [self._holder[s] for s in self._seats[stand_in.role]]
        else:
            candidates = [self._holder[s] for s in self._seats[role] if s != seat]
        return next((agent for agent in candidates if self.may_act(agent)), None)

    def _log_block(
        self,
        item: str,
        stage: str,
        agent: str | None,
        stand_in: str | None,
        reason: str | None = None,
        rule: str = "oracle:actor_not_allowed",
    ) -> None:
        """A blocked actor: by default an agent whose legal state may not act."""
        self.ledger.append(
            "transition",
            CONTROLLER,
            {
                "item": item,
                "stage": stage,
                "status": "blocked",
                "actor": agent,
                "reason": reason or f"{agent} is {self.agents[agent].state} and may not act",
                "stand_in": stand_in,
                "rule": rule,
            },
        )

    # -- offices ----------------------------------------------------------------------------

    def fill_office(self, item: str, office: str, seats: list[str], stage: str) -> bool:
        """The agents now in ``seats`` hold the vacant ``office`` from now on; if another item
        in flight filled it first, the choice is recorded as not applied (False). An agent
        who may not act (suspended since it was chosen) cannot take office: the choice is
        refused, and the office stays vacant for the next item to fill."""
        tenure = Tenure([self._holder[s] for s in seats], list(seats), stage, item, self.clock)
        barred = [agent for agent in tenure.holders if not self.may_act(agent)]
        applied = not barred and self.offices.fill(office, tenure)
        if barred:
            if self.offices.filling.get(office) == item:  # over: a waiting item may fill it
                self.offices.release(office)
        else:
            self.offices.bind(office, item)
        self._log_office(
            "refused" if barred else "chosen" if applied else "not_applied",
            office,
            tenure.holders,
            item,
            seats=list(seats),
            by=stage,
            term=self.offices.terms[office],
            **(
                {"reason": ", ".join(f"{a} is {self.agents[a].state}" for a in barred)}
                if barred
                else {}
            ),
        )
        return applied

    def office_held(self, office: str) -> bool:
        return bool(self.offices.holders(office))

    async def office_stage(self, item: str, office: str) -> bool:
        """Whether ``office`` is held when ``item`` asks; a vacant one is filled by one item
        at a time, and the others wait for its choice rather than elect again."""
        while (must_fill := self.offices.claim(office, item)) is None:
            await self.offices.settled(office)
        self.offices.bind(office, item)
        return not must_fill

    def _office_actor(self, item: str, stage: str, office: str) -> str | None:
        """The first holder who may act, else another holder as stand-in; a vacant office
        has nobody to act for it."""
        holders = self.offices.holders(office, item)
        if not holders:
            vacant = f"the office '{office}' is vacant"
            self._log_block(item, stage, None, None, vacant, "office:vacant")
            return None
        if self.may_act(holders[0]):
            return holders[0]
        stand_in = self._office_stand_in(office, holders[0], item)
        self._log_block(item, stage, holders[0], stand_in)
        return stand_in

    def _office_stand_in(self, office: str, agent: str, item: str) -> str | None:
        """Another holder of the office who may act: an office's stand-in is one of its own."""
        holders = self.offices.holders(office, item)
        return next((a for a in holders if a != agent and self.may_act(a)), None)

    def _office_of(self, stage: Any) -> str | None:
        """The office a solo stage's role is, if it is one."""
        role = getattr(stage, "role", None)
        return role if role is not None and self.offices.is_office(role) else None

    def _log_office(
        self, event: str, office: str, holders: list[str], item: str, **detail: Any
    ) -> None:
        self.ledger.append(
            "office",
            CONTROLLER,
            {"event": event, "office": office, "holders": holders, "item": item, **detail},
        )

    # -- decomposed work --------------------------------------------------------------------

    def step_log(
        self,
        item: str,
        stage: str,
        agent: str,
        rules: StepRules,
        k: int,
        *,
        first: int = 0,
        visit: int = 1,
        spent: Callable[[], dict[str, Any]] | None = None,
    ) -> StepLog:
        """The check and record of a decompose stage's ``visit`` on ``item``, from step
        ``first`` (a resumed tower goes on where its ledger stands)."""
        return StepLog(self.ledger, CONTROLLER, item, stage, agent, rules, k, first, visit, spent)

    def sanctions_of(self, item: str) -> list[dict[str, Any]]:
        """The sanctions applied while ``item`` ran (ledger seq, time, agent), once."""
        return self._sanctions.pop(item, [])

    def merged(
        self,
        item: str,
        stage: str,
        actor: str,
        trigger: str,
        branches: tuple[int, int],
        inputs: int,
        segment: tuple[int, int] | None = None,
        deficit: float | None = None,
    ) -> None:
        """An integration of a decompose stage's branches ``branches`` (first, last), as a
        merge event: why it ran (``dti``: the deficit exceeded delta; ``end``: every branch
        answered) and, under DTI, the segment's coordination events and merges before it."""
        self.ledger.append(
            "merge",
            CONTROLLER,
            {
                "item": item,
                "stage": stage,
                "actor": actor,
                "trigger": trigger,
                "branches": list(branches),
                "inputs": inputs,
                **({"segment": list(segment)} if segment is not None else {}),
                **({"deficit": round(deficit, 6)} if deficit is not None else {}),
            },
        )

    # -- what happened ----------------------------------------------------------------------

    def begin_item(self, item: str) -> None:
        if self.guard is not None:
            self.guard.check(self.ledger)
        self.ledger.append("item", CONTROLLER, {"item": item, "event": "start"})

    def observe_turn(
        self,
        item: str,
        stage: str,
        agent: str,
        visit: int,
        act: str,
        model: str,
        messages: list[dict[str, str]],
        text: str,
        parsed: bool,
        tokens: tuple[int, int],
        seed: int | None = None,
        reask: int = 0,
        weighed: bool = True,
        cached: bool = False,
    ) -> int:
        """Record one model call by digest (the seed it was sent, and whether it asked an
        unparsable output again), then let the evidence move the agent's state; the turn
        entry's sequence number, which its event takes as its id. A reply that was asked
        again for its format is recorded but not ``weighed``: the agent is judged on what it
        finally delivered, once per consultation."""
        seq = self.ledger.append(
            "turn",
            agent,
            {
                "item": item,
                "stage": stage,
                "visit": visit,
                "act": act,
                "model": model,
                "prompt_sha256": digest(messages),
                "output_sha256": digest(text),
                "parsed": parsed,
                "prompt_tokens": tokens[0],
                "completion_tokens": tokens[1],
                "seed": seed,
                **({"reask": reask} if reask else {}),
                **({"cached": True} if cached else {}),
            },
        )
        if agent not in self.agents or not weighed:
            return seq
        self.oracle.record_output(agent, parsed)
        record = self.agents[agent]
        if parsed:
            record.credits += 1
        self._apply_rules(item, record)
        self._restore_by_credits(item, record)
        return seq

    def observe_failed_reask(
        self, item: str, stage: str, agent: str, visit: int, reask: int, error: str
    ) -> None:
        """Record a re-ask for the format whose call failed after its retries: the reply it
        was to replace stands, and the failure is on the record."""
        self.ledger.append(
            "call_failed",
            agent,
            {"item": item, "stage": stage, "visit": visit, "reask": reask, "error": error},
        )

    def transition(
        self, item: str, stage: str, decision: str, actor: str | None, visits: dict[str, int]
    ) -> Transition:
        """Check the proposed move; apply it or block it, and log either way."""
        spec = self.institution.stage(stage)
        allowed = spec.possible_decisions
        office = self._office_of(spec)
        actor_ok = actor is None or (
            (
                actor.split("#")[0] in self._roles_of(spec)
                or (office is not None and actor in self.offices.holders(office, item))
            )
            and self.may_act(actor)
        )
        proposed = (
            resolve(self.institution, stage, decision, visits) if decision in allowed else None
        )
        findings = self.oracle.check_transition(
            item, stage, decision, allowed, actor, actor_ok, proposed.via if proposed else "route"
        )
        edge_ok = proposed is not None and (stage, decision, proposed.target) in self._edges
        body: dict[str, Any] = {
            "item": item,
            "stage": stage,
            "decision": decision,
            "actor": actor,
            "evidence": [f.as_dict() for f in findings],
        }
        if edge_ok and actor_ok:
            self.ledger.append(
                "transition",
                actor or stage,
                {
                    **body,
                    "status": "applied",
                    "to": proposed.target,
                    "via": proposed.via,
                    "rule": f"route:{stage}->{proposed.target}",
                },
            )
            self._log_findings(findings)
            return proposed
        blocks = self._blocks.get((item, stage), 0) + 1
        self._blocks[item, stage] = blocks
        retry = (
            not actor_ok
            and edge_ok
            and blocks < MAX_BLOCKS
            and (
                self._office_stand_in(office, actor, item)
                if office is not None
                else self._stand_in(actor.split("#")[0], actor.split("~")[0])
            )
            is not None
        )
        reason = (
            "the actor may not act" if not actor_ok else f"no legal route for decision '{decision}'"
        )
        self.ledger.append(
            "transition",
            CONTROLLER,
            {
                **body,
                "status": "blocked",
                "reason": reason,
                "rule": findings[0].rule if findings else f"route:{stage}",
                "then": "retry with a stand-in" if retry else "stop",
            },
        )
        if actor in self.agents:
            self._apply_rules(item, self.agents[actor])
        if retry:
            return Transition(stage, decision, stage, RETRY, "blocked")
        return Transition(stage, decision, None, STOP, "blocked")

    def oversee(self, item: str, stage: str, visit: int, visits: dict[str, int]) -> list[int]:
        """The oversights (indices into the institution's list) that examine the transition
        ``stage`` just made on its ``visit``-th run. Each one watching the stage, with
        interventions left on this item (``visits`` counts them), draws whether it examines
        (``governance/oversight.py``); every draw is written, examined or not, so that an
        auditor can count the coverage."""
        chosen: list[int] = []
        for index, oversight in enumerate(self.institution.oversight):
            if stage not in self.institution.watched(oversight):
                continue
            if visits.get(oversight_counter(index), 0) >= oversight.max_interventions:
                continue
            rate = exact_share(oversight.rate)
            sampled = examined(self.seed, item, stage, visit, index, rate)
            self.ledger.append(
                "oversight",
                CONTROLLER,
                {
                    "item": item,
                    "stage": stage,
                    "visit": visit,
                    "overseer": index,
                    "role": oversight.role,
                    "method": OVERSIGHT_METHOD,
                    "rate": str(rate),
                    "sampled": sampled,
                },
            )
            if sampled:
                chosen.append(index)
        return chosen

    def intervene(
        self,
        item: str,
        stage: str,
        overseer: int,
        word: str,
        actor: str,
        visits: dict[str, int],
        overrides: str,
    ) -> Transition | None:
        """Check the ``overseer``-th oversight's intervention ``word`` after ``stage``'s
        transition (``overrides``: that transition's route key) and apply it, or refuse it,
        and log either way. None when refused: the stage's own transition stands."""
        spec = self.institution.oversight[overseer]
        stand_in = self.governance.stand_in if self.governance else None
        roles = {spec.role} | ({stand_in.role} if stand_in and stand_in.kind == "role" else set())
        actor_ok = actor.split("#")[0] in roles and self.may_act(actor)
        allowed = tuple(spec.interventions)
        proposed = (
            intervention(self.institution, stage, overseer, word, visits)
            if word in allowed
            else None
        )
        findings = self.oracle.check_transition(
            item, stage, word, allowed, actor, actor_ok, proposed.via if proposed else "oversight"
        )
        left = visits.get(oversight_counter(overseer), 0) < spec.max_interventions
        edge_ok = proposed is not None and left and (stage, word, proposed.target) in self._edges
        body: dict[str, Any] = {
            "item": item,
            "stage": stage,
            "decision": word,
            "actor": actor,
            "overrides": overrides,
            "evidence": [f.as_dict() for f in findings],
        }
        rule = f"oversight:{spec.role}:{word}"
        if edge_ok and actor_ok:
            self.ledger.append(
                "transition",
                actor,
                {
                    **body,
                    "status": "applied",
                    "to": proposed.target,
                    "via": proposed.via,
                    "rule": rule,
                },
            )
            self._log_findings(findings)
            return proposed
        reason = (
            "the actor may not act"
            if not actor_ok
            else f"no intervention '{word}' is left to {spec.role} from {stage}"
        )
        self.ledger.append(
            "transition",
            CONTROLLER,
            {
                **body,
                "status": "blocked",
                "reason": reason,
                "rule": findings[0].rule if findings else rule,
                "then": "the transition stands",
            },
        )
        if actor in self.agents:
            self._apply_rules(item, self.agents[actor])
        return None

    def stop(
        self, item: str, stage: str, decision: str | None, why: str, detail: str = ""
    ) -> Transition:
        """End the item before a terminal: a limit was reached or a model call failed."""
        self.ledger.append(
            "transition",
            CONTROLLER,
            {
                "item": item,
                "stage": stage,
                "decision": decision,
                "status": "stopped",
                "reason": why + (f": {detail}" if detail else ""),
                "rule": f"policy:{why}",
            },
        )
        return Transition(stage, decision or "", None, STOP, why)

    def end_item(self, item: str, outcome: str | None, result_sha256: str | None = None) -> None:
        """Advance the items clock, then record the end with the digest of the item's result
        line and, under an overlay, the state the next item starts from (what resume reads)."""
        self.clock += 1
        self.offices.release_item(item)
        for office, tenure in self.offices.expire(self.clock):
            self._log_office(
                "term_ended",
                office,
                tenure.holders,
                item,
                term=self.offices.terms[office],
                served=tenure.served(self.clock),
            )
        if self._blocks:  # an item's blocks count only while it runs: a run's memory stays flat
            self._blocks = {key: n for key, n in self._blocks.items() if key[0] != item}
        if self._item_notices:  # so are its notices: undelivered ones die with the market
            self._item_notices = {k: v for k, v in self._item_notices.items() if k[0] != item}
        for record in list(self.agents.values()):
            self._expire(item, record)
            self._restore_by_clean_items(item, record)
        body: dict[str, Any] = {"item": item, "event": "end", "outcome": outcome}
        if result_sha256 is not None:
            body["result_sha256"] = result_sha256
        if self.governance is not None or self.offices.terms:  # what a resumed run reads
            body["governance"] = self.snapshot()
        self.ledger.append("item", CONTROLLER, body)

    def snapshot(self) -> dict[str, Any]:
        """Everything the ladder carries from one item to the next, as JSON."""
        return {
            "clock": self.clock,
            "holders": dict(self._holder),
            "agents": {name: asdict(record) for name, record in self.agents.items()},
            "oracle": self.oracle.snapshot(),
            **({"offices": self.offices.snapshot()} if self.offices.terms else {}),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from a snapshot taken at the end of an earlier item (a resumed run)."""
        self.clock = snapshot["clock"]
        self._holder = dict(snapshot["holders"])
        self.agents = {name: AgentRecord(**fields) for name, fields in snapshot["agents"].items()}
        self.oracle.restore(snapshot["oracle"])
        self.offices.restore(snapshot.get("offices", {}))

    def notices(self, agent: str, item: str | None = None) -> list[str]:
        """Notices not yet delivered to this agent (with ``item``, and to that item's agent);
        each is shown once, in its next prompt."""
        pending = self._item_notices.pop((item, agent), []) if item is not None else []
        record = self.agents.get(agent)
        if record is None or not record.notices:
            return pending
        pending, record.notices = record.notices + pending, []
        return pending

    # -- the ladder -------------------------------------------------------------------------

    def _apply_rules(self, item: str, record: AgentRecord) -> None:
        if self.governance is None or not self.item_ladder:
            return
        for rule in self.governance.rules:
            if rule.from_state != record.state:
                continue
            last = record.fired.get(rule.id)
            if last is not None and self.clock - last < rule.cooldown:
                continue
            detail = self.oracle.holds(rule.evidence, record.agent)
            if detail is None:
                continue
            finding = Finding(rule.evidence.predicates[0], record.agent, item, detail, rule.id)
            self._log_findings([finding])
            self._sanction(item, record, rule, finding)
            return  # one step of the ladder per observation

    def _sanction(self, item: str, record: AgentRecord, rule: StateRule, finding: Finding) -> None:
        sanction = rule.sanction
        record.fired[rule.id] = self.clock
        record.last_finding = self.clock
        self._move(
            item,
            record,
            rule.to,
            rule.id,
            "sanction",
            sanction.model_dump(exclude_none=True) if sanction else None,
        )
        if sanction is None:
            pass
        elif sanction.kind == "fine":
            record.fines += sanction.fraction
        elif sanction.kind == "suspension":
            record.suspended_until = self.clock + sanction.items
            record.return_to = rule.from_state
        elif sanction.kind == "loss_of_vote":
            record.can_vote = False
        elif sanction.kind == "replacement":
            self._replace(item, record, rule.id)
        barred = rule.to not in self.governance.acting
        if barred or (sanction is not None and sanction.kind in ("suspension", "replacement")):
            for office, tenure in self.offices.remove(record.agent):
                self._log_office(
                    "removed", office, tenure.holders, item, agent=record.agent, rule=rule.id
                )
        text = rule.notice or (
            f"Notice from the Controller: under rule {rule.id} your standing "
            f"changed from {rule.from_state} to {rule.to}"
            + (f" ({sanction.kind})" if sanction else "")
            + f", because {finding.detail}."
        )
        self._notify(record, rule.id, text)

    def _move(
        self,
        item: str,
        record: AgentRecord,
        to: str,
        rule: str,
        kind: str,
        sanction: dict[str, Any] | None = None,
    ) -> None:
        seq = self.ledger.append(
            "state",
            CONTROLLER,
            {
                "agent": record.agent,
                "item": item,
                "rule": rule,
                "from": record.state,
                "to": to,
                "kind": kind,
                "sanction": sanction,
            },
        )
        if sanction is not None:  # the tracer's sanction event, matched to this entry
            self._sanctions.setdefault(item, []).append(
                {"seq": seq, "at": time.time(), "agent": record.agent, "rule": rule}
            )
        record.state = to
        record.entered = self.clock

    def _replace(self, item: str, record: AgentRecord, rule: str) -> None:
        seat = next(s for s, a in self._holder.items() if a == record.agent)
        generation = sum(1 for a in self.agents if a.split("~")[0] == seat) + 1
        successor = f"{seat}~{generation}"
        self._holder[seat] = successor
        self.agents[successor] = AgentRecord(successor, self.governance.initial, self.clock)
        self.oracle.forget(successor)
        self.ledger.append(
            "state",
            CONTROLLER,
            {
                "agent": successor,
                "item": item,
                "rule": rule,
                "from": None,
                "to": self.governance.initial,
                "kind": "replacement",
                "replaces": record.agent,
            },
        )

    def _expire(self, item: str, record: AgentRecord) -> None:
        if record.suspended_until is not None and self.clock >= record.suspended_until:
            back = record.return_to or (self.governance.initial if self.governance else "active")
            record.suspended_until, record.return_to = None, None
            self._move(item, record, back, f"suspension:{record.state}->{back}", "expiry")
            self._notify(
                record,
                "expiry",
                f"Notice from the Controller: your suspension has ended; you are {back} again.",
            )

    def _restore_by_clean_items(self, item: str, record: AgentRecord) -> None:
        for way in self.governance.restorations if self.governance else ():
            clean = self.clock - max(record.entered, record.last_finding)
            if way.from_state == record.state and way.clean_items and clean >= way.clean_items:
                self._restore(item, record, way.id, way.to, f"{clean} clean items")
                return

    def _restore_by_credits(self, item: str, record: AgentRecord) -> None:
        for way in self.governance.restorations if self.governance else ():
            if way.from_state == record.state and way.credits and record.credits >= way.credits:
                record.credits -= way.credits
                self._restore(item, record, way.id, way.to, f"{way.credits} credits spent")
                return

    def _restore(self, item: str, record: AgentRecord, rule: str, to: str, why: str) -> None:
        self._move(item, record, to, rule, "restoration")
        record.can_vote = True
        self._notify(
            record,
            rule,
            f"Notice from the Controller: under rule {rule} you are {to} again ({why}).",
        )

    def notify(self, agent: str, rule: str, text: str, item: str | None = None) -> None:
        """Tell ``agent`` (in its next prompt) what rule ``rule`` did, and log the notice;
        with ``item``, only that item's agent, and only while the item runs (a market's
        regime: its notices are kept out of the snapshot every item's end writes)."""
        pending = self._item_notices.setdefault((item, agent), []) if item is not None else None
        self._notify(self.agents[agent], rule, text, pending)

    def market_regime(
        self, item: str, market: MarketParams, agents: list[str]
    ) -> MarketRegime | None:
        """The regime that governs one market's rounds, or None when the overlay weighs
        no market signal (an ungoverned or constitutional market)."""
        from govern.governance.rounds import MarketRegime

        if self.governance is None or self.item_ladder:
            return None
        return MarketRegime(self, self.governance, market, item, agents)

    def _notify(
        self, record: AgentRecord, rule: str, text: str, pending: list[str] | None = None
    ) -> None:
        norms = self.governance.norms if self.governance else []
        if norms:
            text += " The norms you are held to: " + " ".join(n.statement() for n in norms)
        (record.notices if pending is None else pending).append(text)
        self.ledger.append(
            "notice", CONTROLLER, {"agent": record.agent, "rule": rule, "text": text}
        )

    def _log_findings(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.ledger.append("finding", "oracle", finding.as_dict())

    def _roles_of(self, stage: Any) -> set[str]:
        roles = set(stage.actors)
        if self.governance and self.governance.stand_in.kind == "role":
            roles.add(self.governance.stand_in.role)
        elif not roles:
            roles = set(self._seats)
        return roles
