"""Elites: how a run's coordination concentrates on a few agents.

An agent's coordination effort is the attention its work draws: the events that build on
events it made (a review of its claim, a revision of it, a vote on it, a merge of it). Its
share is that over all such attention in the run. From the shares: the Gini coefficient,
the share of the top 10% of agents, and the effective number of agents (the inverse of the
sum of squared shares: n when all share alike, 1 when one agent draws everything).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from govern.trace.events import Event

TOP_SHARE = 0.10


class Concentration(BaseModel):
    """How concentrated the attention of one run (or several, pooled) is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: int = Field(description="agents whose events anyone built on, or who made any")
    attention: int = Field(description="events that built on another event")
    shares: dict[str, float] = Field(description="each agent's share of the attention")
    gini: float = Field(description="0: all agents alike; near 1: one agent draws it all")
    top_share: float = Field(description="the share of the top 10% of agents (at least one)")
    effective_agents: float = Field(description="1 / sum of squared shares")


def attention_by_agent(events: Iterable[Event]) -> Counter[str]:
    """Per agent, the events that build on its events (every author counted, with 0)."""
    events = list(events)
    author = {e.id: e.agent for e in events}
    drawn: Counter[str] = Counter({e.agent: 0 for e in events})
    for event in events:
        for parent in dict.fromkeys(event.parents):
            if parent in author:
                drawn[author[parent]] += 1
    return drawn


def gini(values: Iterable[float]) -> float:
    """The Gini coefficient of non-negative values (0 for all equal or all zero)."""
    ordered = np.sort(np.asarray(list(values), dtype=float))
    n, total = ordered.size, ordered.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * ordered).sum()) / (n * total) - (n + 1) / n)


def concentration(events: Iterable[Event]) -> Concentration:
    drawn = attention_by_agent(events)
    total = sum(drawn.values())
    agents = len(drawn)
    shares = {a: (n / total if total else 0.0) for a, n in drawn.most_common()}
    top = max(1, math.ceil(TOP_SHARE * agents)) if agents else 0
    squares = sum(s * s for s in shares.values())
    return Concentration(
        agents=agents,
        attention=total,
        shares=shares,
        gini=gini(drawn.values()),
        top_share=sum(list(shares.values())[:top]),
        effective_agents=1 / squares if squares else 0.0,
    )
