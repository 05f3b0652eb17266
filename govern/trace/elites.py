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
    """Per agent, the events that build on its events (every author counted, with 0). The
    agents of several runs are told apart (``run/agent``): a seat of one run is not the
    same agent as the seat of that name in another."""
    events = list(events)
    several = len({e.run for e in events}) > 1
    author = {e.id: f"{e.run}/{e.agent}" if several else e.agent for e in events}
    drawn: Counter[str] = Counter({name: 0 for name in author.values()})
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


class Attachment(BaseModel):
    """The preferential-attachment exponent: an event builds on claim c with probability
    proportional to (a_c + 1) ** beta, a_c the events that built on c so far (+1: a claim
    nobody has built on yet can still be chosen). beta 0: attention does not attract; 1:
    linear preferential attachment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    beta: float
    sigma: float = Field(description="standard error, from the exact Fisher information")
    choices: int = Field(description="times an event built on a claim among others")


class NoAttachment(ValueError):
    """Too few choices among claims to estimate the exponent; the message says why."""


MIN_CHOICES = 20
_BETA_RANGE = (-5.0, 10.0)


def attachment_exponent(events: Iterable[Event]) -> Attachment:
    """The maximum-likelihood exponent over every time an event built on a claim while
    other claims of its item stood: each choice is a draw among the item's claims so far,
    weighted by (attention + 1) ** beta."""
    from scipy.optimize import minimize_scalar

    from govern.trace.cascades import CLAIMS

    choices: list[tuple[float, np.ndarray, np.ndarray]] = []  # chosen, log(a+1) values, counts
    attention: dict[str, int] = {}
    standing: dict[str, Counter[int]] = {}  # item -> attention value -> claims with it
    for event in events:
        counts = standing.setdefault(event.item, Counter())
        parents = [p for p in dict.fromkeys(event.parents) if p in attention]
        if sum(counts.values()) > 1:
            held = +counts  # the attention values some claim has now
            values = np.log(np.fromiter(held, dtype=float) + 1)
            weights = np.fromiter(held.values(), dtype=float)
            choices.extend((math.log(attention[p] + 1), values, weights) for p in parents)
        for parent in parents:
            counts[attention[parent]] -= 1
            attention[parent] += 1
            counts[attention[parent]] += 1
        if event.type in CLAIMS:
            attention[event.id] = 0
            counts[0] += 1
    if len(choices) < MIN_CHOICES:
        raise NoAttachment(
            f"only {len(choices)} times an event built on a claim among others; "
            f"at least {MIN_CHOICES} are needed to estimate the exponent"
        )
    if all(np.ptp(values) == 0 for _, values, _ in choices):
        raise NoAttachment("every choice was among claims of equal attention: beta is undefined")

    def moments(beta: float) -> tuple[float, float]:
        """(- log-likelihood, Fisher information) at beta."""
        loss, information = 0.0, 0.0
        for chosen, values, weights in choices:
            logits = beta * values + np.log(weights)
            top = logits.max()
            probabilities = np.exp(logits - top)
            total = probabilities.sum()
            probabilities /= total
            mean = float((probabilities * values).sum())
            loss -= beta * chosen - (top + math.log(total))
            information += float((probabilities * (values - mean) ** 2).sum())
        return loss, information

    found = minimize_scalar(
        lambda beta: moments(beta)[0], bounds=_BETA_RANGE, method="bounded",
        options={"xatol": 1e-8},
    )  # fmt: skip
    beta = float(found.x)
    low, high = _BETA_RANGE
    if min(beta - low, high - beta) < 1e-3:
        raise NoAttachment(
            f"the likelihood keeps rising toward beta = {round(beta):g}, the end of the range "
            f"searched ({low:g} to {high:g}): attention does not explain these choices as a "
            "power of it"
        )
    _, information = moments(beta)
    sigma = 1 / math.sqrt(information) if information > 0 else math.inf
    return Attachment(beta=beta, sigma=sigma, choices=len(choices))
