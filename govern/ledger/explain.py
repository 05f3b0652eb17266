"""A readable timeline per agent from a ledger: what each did, what was found, what followed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from govern.ledger.format import parse


@dataclass
class AgentStory:
    agent: str
    turns: int = 0
    unparsable: int = 0
    applied: int = 0
    blocked: int = 0
    stages: Counter = field(default_factory=Counter)
    events: list[str] = field(default_factory=list)  # findings, sanctions, offices held
    stood_in: Counter = field(default_factory=Counter)  # (stage, stand-in) -> times
    first_stand_in: dict[tuple[str, str], int] = field(default_factory=dict)
    drawn: Counter = field(default_factory=Counter)  # lot stage -> times drawn in it
    first_drawn: dict[str, int] = field(default_factory=dict)
    state: str | None = None
    # a market's ladder starts afresh in each market: the state each market left it in
    market_states: dict[str, str] = field(default_factory=dict)
    steps: int = 0  # decompose stages: steps (or branches) decided by vote, their samples
    step_samples: int = 0
    step_red_flags: int = 0
    merges: Counter = field(default_factory=Counter)  # integrations, by what triggered them

    def standing(self) -> str:
        """Where the agent stands: its state now, or, for firms, where each market left it."""
        if len(self.market_states) > 1:
            ended = Counter(self.market_states.values())
            return ", ended " + ", ".join(
                f"{state} in {n} market{'s' if n != 1 else ''}" for state, n in ended.most_common()
            )
        return f", now {self.state}" if self.state else ""


def timeline(lines: list[bytes]) -> list[AgentStory]:
    """Stories of every agent named in the (verified) ledger lines, in order of first
    appearance; an entry not shaped as govern writes it ends the story there."""
    stories: dict[str, AgentStory] = {}
    holders: dict[str, str] = {}  # seat -> its agent, where a replacement took it

    def story(agent: str) -> AgentStory:
        return stories.setdefault(agent, AgentStory(agent))

    for line in lines:
        entry = parse(line)
        try:
            _add(entry, story, holders)
        except (KeyError, TypeError, AttributeError, ValueError):
            break
    return list(stories.values())


def _add(entry: dict[str, Any], story, holders: dict[str, str]) -> None:
    kind, body, seq = entry["kind"], entry["body"], entry["seq"]
    item = body.get("item")
    where = f"#{seq}" + (f" {item}" if item else "")
    if body.get("round") is not None:  # a market's rounds: sanctions are counted in them
        where += f" round {body['round']}"
    case = f" [case {body['case']}]" if body.get("case") else ""
    if kind == "turn":
        who = story(entry["actor"])
        who.turns += 1
        who.unparsable += not body["parsed"]
        who.stages[body["stage"]] += 1
    elif kind == "transition" and body.get("status") == "applied" and body.get("actor"):
        story(body["actor"]).applied += 1
    elif kind == "transition" and body.get("status") == "blocked" and body.get("actor"):
        who = story(body["actor"])
        who.blocked += 1
        if body.get("stand_in") is not None or body.get("then") is None:
            key = (body["stage"], body.get("stand_in") or "nobody (seat vacant)")
            who.stood_in[key] += 1
            who.first_stand_in.setdefault(key, seq)
        else:
            step = f" at step {body['step']}" if "step" in body else ""
            who.events.append(
                f"{where} transition blocked in {body['stage']}{step}: "
                f"{body['reason']}; then {body['then']}"
            )
    elif kind == "finding" and "#" in body["subject"]:  # agent findings; stage ones are not
        story(body["subject"]).events.append(
            f"{where} finding {body['predicate']}: {body['detail']} [{body['rule']}]{case}"
        )
    elif kind == "lot":  # the seats drawn, told in the stories of the agents seated in them
        for seat in body["drawn"]:
            who = story(holders.get(seat, seat))
            who.drawn[body["stage"]] += 1
            who.first_drawn.setdefault(body["stage"], seq)
    elif kind == "office":
        for holder in body["holders"]:
            story(holder).events.append(f"{where} {_office_event(body)}")
    elif kind == "state":
        if body.get("replaces") is not None:  # a successor takes the seat: later lots seat it
            holders[body["agent"].split("~")[0]] = body["agent"]
        who = story(body["agent"])
        sanction = body.get("sanction") or {}
        amount = f" {sanction['amount']:.2f}" if "amount" in sanction else ""
        extra = f" ({sanction.get('kind')}{amount})" if sanction else ""
        came = f" from {body['from']}" if body.get("from") else ""
        who.events.append(
            f"{where} {body['kind']} {body['rule']}:{came} to {body['to']}{extra}{case}"
        )
        who.state = body["to"]
        if body.get("round") is not None:
            who.market_states[body["item"]] = body["to"]
    elif kind == "steps":
        who = story(body["actor"])
        who.steps += body["count"]
        who.step_samples += body["samples"]
        who.step_red_flags += sum(body["red_flags"].values())
    elif kind == "merge":
        story(body["actor"]).merges[body["trigger"]] += 1
    elif kind == "undecided":
        story(body["actor"]).events.append(
            f"{where} step {body['step']} in {body['stage']} undecided after {body['rounds']} "
            f"rounds (votes {body['votes']}) [{body['rule']}]"
        )
    elif kind == "credit":
        story(body["agent"]).events.append(f"{where} clean round: credit {body['credits']}{case}")
    elif kind == "notice":
        story(body["agent"]).events.append(f"{where} notice delivered under {body['rule']}")


_TRIGGERS = {"dti": "when the integration deficit exceeded delta", "end": "at the end"}


def _office_event(body: dict[str, Any]) -> str:
    """What happened to an office, as its holders' stories tell it."""
    office, event = body["office"], body["event"]
    if event == "chosen":
        return f"took office {office} (chosen by {body['by']}, term {body['term']})"
    if event == "not_applied":
        return f"chosen for office {office} by {body['by']}, not seated: it was filled first"
    if event == "refused":
        return f"chosen for office {office} by {body['by']}, refused: {body['reason']}"
    if event == "term_ended":
        return f"left office {office}: its term ended after {body['served']} items"
    if event == "removed":
        return f"left office {office}: {body['agent']} was removed under {body['rule']}"
    raise ValueError(f"unknown office event {event!r}")


def render(stories: list[AgentStory]) -> str:
    out: list[str] = []
    for s in stories:
        state = s.standing()
        stages = ", ".join(f"{stage} {n}" for stage, n in s.stages.most_common())
        out.append(f"{s.agent}{state}")
        out.append(
            f"  {s.turns} turns ({s.unparsable} unparsable) in {stages or 'no stage'}; "
            f"{s.applied} transitions applied, {s.blocked} blocked"
        )
        if s.steps:
            out.append(
                f"  {s.steps:,} steps decided by vote ({s.step_samples:,} samples, "
                f"{s.step_red_flags:,} red-flagged)"
            )
        if s.merges:
            triggers = ", ".join(f"{n} {_TRIGGERS[t]}" for t, n in sorted(s.merges.items()))
            out.append(f"  {sum(s.merges.values())} integrations ({triggers})")
        out.extend(f"  {event}" for event in s.events)
        for stage, times in s.drawn.items():
            out.append(
                f"  drawn by lot in {stage} {times} time{'s' if times != 1 else ''}, "
                f"first at #{s.first_drawn[stage]}"
            )
        for (stage, stand_in), times in s.stood_in.items():
            out.append(
                f"  barred from {stage} {times} times from #{s.first_stand_in[stage, stand_in]}"
                f" on; {stand_in} acted instead"
            )
    return "\n".join(out)


def as_dicts(stories: list[AgentStory]) -> list[dict[str, Any]]:
    return [
        {
            "agent": s.agent,
            "turns": s.turns,
            "unparsable": s.unparsable,
            "applied": s.applied,
            "blocked": s.blocked,
            "stages": dict(s.stages),
            "state": s.state,
            **({"market_states": s.market_states} if s.market_states else {}),
            "drawn": dict(s.drawn),
            **({"steps": s.steps, "step_samples": s.step_samples} if s.steps else {}),
            **({"merges": dict(s.merges)} if s.merges else {}),
            "events": s.events,
        }
        for s in stories
    ]
