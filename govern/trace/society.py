"""An offline agent society: N agents building on each other's claims in an institution's
topology, so that the tracer's three laws (heavy-tailed cascades, elites, extremes growing
with size) can be examined on this machine. A seeded model of a society, not LLMs: its runs
say SIMULATED, like every simulated run.

Each of ``rounds`` rounds, every agent acts once, in a seeded order: with ``p_new`` it
proposes a claim of its own; otherwise it picks a claim it can see with probability
proportional to (attention + 1) ** ``beta`` (attention: the events that built on the claim
so far) and revises, endorses, contradicts or is delegated to on it (``shares``). Who sees
what is the topology's (named after the institution patterns):

- ``consensus``: every claim;
- ``autonomous_cluster``: the claims of its own cluster of ``CLUSTER`` agents;
- ``pipeline``: its own claims and those of the agent before it;
- ``gated_pipeline``: as pipeline, and every ``GATE``-th agent (a gate) sees all.

With ``dti`` set, the DTI monitor runs live: every event in a root's cascade is a
coordination event of that root, and when its deficit exceeds delta the acting agent
merges the root's claims made since the last merge (at most ``MERGE_AT_MOST``), a merge
event, and the root's segment starts again.

These rules and numbers are modelling assumptions, stated here; the laws a society shows
are what they produce, to be compared with a real society's, never taken for one.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from govern.files import write_atomic
from govern.ledger.binding import EVENTS
from govern.spec.models import DTIParams
from govern.trace.dti import DTIMonitor
from govern.trace.events import Event

Topology = Literal["consensus", "autonomous_cluster", "pipeline", "gated_pipeline"]
ACTS = ("revise", "endorse", "contradict", "delegate")
MAX_ACTIONS = 100_000  # agents x rounds: about half a minute for a consensus society here
CLUSTER = 8
GATE = 4
MERGE_AT_MOST = 8
TOKENS = {"propose": 120, "revise": 100, "endorse": 30, "contradict": 60, "delegate": 80,
          "merge": 150}  # fmt: skip


class SocietyParams(BaseModel):
    """How a simulated society behaves (modelling assumptions, see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: int = Field(ge=2, le=4096)
    rounds: int = Field(10, ge=1, le=1000)
    topology: Topology = "consensus"
    p_new: float = Field(0.1, gt=0, le=1, description="chance an agent proposes a claim")
    beta: float = Field(1.0, ge=0, le=5, description="preferential attachment's exponent")
    shares: tuple[float, float, float, float] = Field(
        (0.4, 0.3, 0.2, 0.1), description="revise, endorse, contradict, delegate"
    )
    dti: DTIParams | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _within_reach(self) -> SocietyParams:
        if self.agents * self.rounds > MAX_ACTIONS:
            raise ValueError(
                f"agents x rounds is {self.agents * self.rounds:,}: at most {MAX_ACTIONS:,} "
                "actions a society, whose every choice weighs every claim it can see"
            )
        return self


def simulate(params: SocietyParams) -> list[Event]:
    """The society's events, in the order they happened."""
    rng = np.random.default_rng([params.seed, params.agents, len(params.topology)])
    run = f"society-{params.topology}-{params.agents}-s{params.seed}"
    shares = np.asarray(params.shares) / sum(params.shares)
    events: list[Event] = []
    claims: list[str] = []  # claim ids, in order
    room = params.agents * params.rounds * 2 + 1  # every action a claim, and a merge each
    author = np.zeros(room, dtype=np.int64)  # each claim's agent (the first ``count``)
    attention = np.zeros(room)  # events that built on each claim
    count = 0
    root_of: dict[str, str] = {}  # claim -> its cascade's root
    since_merge: dict[str, list[int]] = defaultdict(list)  # root -> claims since a merge
    monitor = DTIMonitor(params.dti) if params.dti is not None else None

    def add(agent: int, kind: str, parents: list[str], claim: bool) -> str:
        nonlocal count
        event = Event(
            id=f"{run}:{len(events)}", run=run, time=float(len(events)), item="society",
            agent=f"agent#{agent + 1}", stage=params.topology, type=kind,  # type: ignore[arg-type]
            parents=parents, output_sha256=None, tokens=TOKENS[kind],
        )  # fmt: skip
        events.append(event)
        if claim:
            root = root_of[parents[0]] if parents else event.id
            root_of[event.id] = root
            since_merge[root].append(count)
            claims.append(event.id)
            author[count] = agent
            count += 1
        return event.id

    for _ in range(params.rounds):
        for agent in rng.permutation(params.agents):
            visible = _visible(params.topology, int(agent), author[:count])
            if not visible.size or rng.random() < params.p_new:
                add(int(agent), "propose", [], claim=True)
                continue
            weights = (attention[visible] + 1.0) ** params.beta
            chosen = int(visible[rng.choice(visible.size, p=weights / weights.sum())])
            kind = ACTS[int(rng.choice(len(ACTS), p=shares))]
            attention[chosen] += 1
            parent = claims[chosen]
            add(int(agent), kind, [parent], claim=kind in ("revise", "delegate"))
            root = root_of[parent]
            if monitor is not None and monitor.coordination(root):
                merged = since_merge[root][-MERGE_AT_MOST:]
                attention[merged] += 1
                add(int(agent), "merge", [claims[i] for i in merged], claim=True)
                since_merge[root] = [count - 1]
                monitor.integrated(root)
    return events


def _visible(topology: Topology, agent: int, author: np.ndarray) -> np.ndarray:
    """The indices of the claims ``agent`` can see."""
    if not author.size or topology == "consensus":
        return np.arange(author.size)
    if topology == "autonomous_cluster":
        return np.flatnonzero(author // CLUSTER == agent // CLUSTER)
    if topology == "gated_pipeline" and agent % GATE == 0:
        return np.arange(author.size)
    return np.flatnonzero((author == agent) | (author == agent - 1))


def write_society(folder: Path, params: SocietyParams) -> Path:
    """One society as a run folder of the tracer: its events, and a summary saying that it
    is simulated."""
    events = simulate(params)
    cell = folder / "cells" / events[0].run
    cell.mkdir(parents=True, exist_ok=True)
    write_atomic(cell / EVENTS, "".join(e.model_dump_json() + "\n" for e in events))
    summary = {"simulated": True, "society": params.model_dump(mode="json"), "events": len(events)}
    write_atomic(cell / "summary.json", SocietySummary(**summary).model_dump_json(indent=2))
    return cell


class SocietySummary(BaseModel):
    """What a society's folder says of itself: simulated, and by which parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    simulated: bool
    society: SocietyParams
    events: int
