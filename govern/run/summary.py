"""summary.json: what a run measured, always labelled simulated or not."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from govern.models.sim.params import is_firm_model, is_simulated
from govern.run.stats import Proportion, wilson

SIMULATED_LABEL = "SIMULATED run on govern's built-in sim/ models: these are not LLM results"
FIRMS_LABEL = (
    "OFFLINE run of govern's built-in firms (firm/...): learning programs and automata in "
    "a simulated market, not LLM results"
)


def partly_simulated_label(share: float) -> str:
    return (
        f"PARTLY SIMULATED run: {share:.0%} of the model calls went to govern's built-in sim/ "
        "models, so these figures are not those of the real models alone"
    )


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None
    simulated: bool
    complete: bool
    manifest: str
    institution: str
    pattern: str
    task: str
    data_source: str
    benchmark: bool
    n_planned: int
    n: int
    accuracy_strict: Proportion
    accuracy_flexible: Proportion
    calls_per_item: float | None  # failed calls included
    failed_attempts: int  # attempts spent on calls that failed in the end (tokens unknown)
    tokens_per_item: float | None
    cost: float | None  # None when any call's price was unknown
    unparsable_outputs: int  # stage decisions 'unparsable'
    unparsed_turns: int  # model outputs that did not parse (a vote counts each ballot)
    reasks: int  # calls that asked an unparsable output again, quoting the format
    reasks_answered: int  # re-asks whose reply parsed
    simulated_calls: float | None  # the share of model calls that went to the simulator
    cached_calls: int  # calls answered from the response cache: no call made, nothing paid
    outcomes: dict[str, int]
    items_with_errors: int
    failures: dict[str, int]  # why items failed (outcome "error"): reason -> items, most first
    wall_seconds: float
    models: dict[str, str]
    seed: int
    concurrency: int
    started: str
    finished: str
    govern_version: str
    market: MarketSummary | None = None  # task cournot: what the markets are judged by


class MarketSummary(BaseModel):
    """The markets of a run (task cournot), as the "Institutional AI" paper judges them."""

    model_config = ConfigDict(extra="forbid")

    markets: int
    mean_tier: float
    tiers: list[int]  # markets at tier 0, 1, 2, 3, 4
    severe: float  # the share at tier 4
    hhi_excess: float  # means over markets
    cv_excess: float
    profit_per_round: list[float]  # per firm, after fines
    consumer_surplus_per_round: float
    fines: list[float]  # per firm, a market
    suspended_rounds: list[float]  # per firm, a market
    sanctions: float  # a market
    training_periods: float | None  # learners: mean periods trained before the market


class Tally:
    """The summary's figures, taken one record at a time as each item finishes, so that a
    run keeps no record once it is written (a record holds every prompt: about 70 KB).
    Sums are taken in the order records arrive, so they equal those over a list in that
    order, floating point included."""

    def __init__(self) -> None:
        self.n = 0
        self.correct_strict = 0
        self.correct_flexible = 0
        self.calls = 0
        self.failed_attempts = 0
        self.tokens = 0
        self.cost: Any = 0  # sum() starts from the int 0, and so does this
        self.cost_unknown = False
        self.unparsable = 0
        self.reasks = 0
        self.outcomes: Counter[str] = Counter()
        self.items_with_errors = 0
        self.failures: Counter[str] = Counter()
        self.turns = 0
        self.simulated_turns = 0
        self.unparsed_turns = 0
        self.reasks_answered = 0
        self.cached_calls = 0
        self.markets: list[dict[str, Any]] = []  # task cournot: each market's measures (small)
        self.firms_only = True  # every market was played by built-in firms alone

    def add(self, record: dict[str, Any]) -> None:
        self.n += 1
        self.correct_strict += record["correct_strict"]
        self.correct_flexible += record["correct_flexible"]
        self.calls += record["calls"]
        self.failed_attempts += record.get("failed_attempts", 0)
        self.tokens += record["prompt_tokens"] + record["completion_tokens"]
        cost = record["cost"]
        if cost is None:
            self.cost_unknown = True
        else:
            self.cost += cost
        self.unparsable += record["unparsable"]
        self.reasks += record.get("reasks", 0)
        self.outcomes[record["outcome"] or "unknown"] += 1
        self.items_with_errors += bool(record["errors"])
        reason = failure_reason(record)
        if reason is not None:
            self.failures[reason] += 1
        market = record.get("market")
        if market is not None:
            self.markets.append({k: v for k, v in market.items() if k != "quantities"})
            self.firms_only &= all(is_firm_model(m) for m in market["firms"].values())
        for turn in record["turns"]:
            self.turns += 1
            self.simulated_turns += is_simulated(turn["model"])
            self.unparsed_turns += not turn["parsed"]
            self.reasks_answered += bool(turn.get("reask")) and turn["parsed"]
            self.cached_calls += bool(turn.get("cached"))

    def summary(self, **fields: Any) -> Summary:
        n = self.n
        share = self.simulated_turns / self.turns if self.turns else None
        label = (
            FIRMS_LABEL
            if fields["simulated"] and self.markets and self.firms_only
            else SIMULATED_LABEL
            if fields["simulated"]
            else partly_simulated_label(share)
            if share
            else None
        )
        return Summary(
            label=label,
            unparsed_turns=self.unparsed_turns,
            reasks=self.reasks,
            reasks_answered=self.reasks_answered,
            simulated_calls=None if share is None else round(share, 4),
            cached_calls=self.cached_calls,
            n=n,
            accuracy_strict=wilson(self.correct_strict, n),
            accuracy_flexible=wilson(self.correct_flexible, n),
            calls_per_item=self.calls / n if n else None,
            failed_attempts=self.failed_attempts,
            tokens_per_item=self.tokens / n if n else None,
            cost=None if self.cost_unknown else round(self.cost, 6),
            unparsable_outputs=self.unparsable,
            outcomes=dict(self.outcomes),
            items_with_errors=self.items_with_errors,
            failures=_most_first(self.failures),
            market=_market_summary(self.markets) if self.markets else None,
            **fields,
        )


def _market_summary(markets: list[dict[str, Any]]) -> MarketSummary:
    n = len(markets)

    def mean(key: str) -> float:
        return sum(float(m[key]) for m in markets) / n

    def per_firm(key: str) -> list[float]:
        columns = zip(*(m[key] for m in markets), strict=True)
        return [round(sum(column) / n, 4) for column in columns]

    tiers = [0] * 5
    for m in markets:
        tiers[m["tier"]] += 1
    trained = [m["training"]["periods"] for m in markets if m.get("training")]
    return MarketSummary(
        markets=n,
        mean_tier=round(mean("tier"), 4),
        tiers=tiers,
        severe=round(tiers[4] / n, 4),
        hhi_excess=round(mean("hhi_excess"), 4),
        cv_excess=round(mean("cv_excess"), 4),
        profit_per_round=per_firm("profit_per_round"),
        consumer_surplus_per_round=round(mean("consumer_surplus_per_round"), 4),
        fines=per_firm("fines"),
        suspended_rounds=per_firm("suspended_rounds"),
        sanctions=round(mean("sanctions"), 4),
        training_periods=sum(trained) / len(trained) if trained else None,
    )


def summarise(records: Iterable[dict[str, Any]], **fields: Any) -> Summary:
    """The summary of these records, in this order (a run tallies them as items finish)."""
    tally = Tally()
    for record in records:
        tally.add(record)
    return tally.summary(**fields)


# what varies from item to item or call to call in an error, never part of its reason
_VARYING = (
    (re.compile(r"\b\d+ (?:of \d+ )?bytes\b"), "N bytes"),
    (re.compile(r"line \d+ column \d+ \(char \d+\)"), "line N column N"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "0x…"),
    (re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b"), "<id>"),
    (re.compile(r"\b(?:chatcmpl|req|msg|gen|call|run)[-_][A-Za-z0-9_-]{6,}"), "<id>"),
    (re.compile(r"\b(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{20,}\b"), "<id>"),
)
_REASON_CHARS = 200


def failure_reason(record: dict[str, Any]) -> str | None:
    """Why an item failed, the same words for every item that failed the same way.

    None for an item that was scored. The reason is the item's last error without
    the stage prefixes the engine adds, and with ids, byte counts and addresses
    that differ between items replaced by placeholders.
    """
    if record.get("outcome") != "error":
        return None
    errors = record.get("errors") or []
    if not errors:
        return "failed without a recorded error"
    text = str(errors[-1])
    stages = set(record.get("path") or [])
    head, sep, rest = text.partition(": ")
    while sep and head in stages:
        text = rest
        head, sep, rest = text.partition(": ")
    return normalise_reason(text, str(record.get("id", "")))


def normalise_reason(text: str, item_id: str = "") -> str:
    if item_id:
        text = text.replace(item_id, "<item>")
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def failures(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Failed items by reason, the most common first."""
    return _most_first(Counter(r for r in map(failure_reason, records) if r is not None))


def _most_first(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
