"""summary.json: what a run measured, always labelled simulated or not."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict

from govern.models.sim.params import is_simulated
from govern.run.stats import Proportion, wilson

SIMULATED_LABEL = "SIMULATED run on govern's built-in sim/ models: these are not LLM results"


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


def summarise(records: list[dict[str, Any]], **fields: Any) -> Summary:
    n = len(records)
    costs = [r["cost"] for r in records]
    turns = [t for r in records for t in r["turns"]]
    share = sum(is_simulated(t["model"]) for t in turns) / len(turns) if turns else None
    label = (
        SIMULATED_LABEL if fields["simulated"] else partly_simulated_label(share) if share else None
    )
    return Summary(
        label=label,
        unparsed_turns=sum(not t["parsed"] for t in turns),
        reasks=sum(r.get("reasks", 0) for r in records),
        reasks_answered=sum(bool(t.get("reask")) and t["parsed"] for t in turns),
        simulated_calls=None if share is None else round(share, 4),
        cached_calls=sum(bool(t.get("cached")) for t in turns),
        n=n,
        accuracy_strict=wilson(sum(r["correct_strict"] for r in records), n),
        accuracy_flexible=wilson(sum(r["correct_flexible"] for r in records), n),
        calls_per_item=sum(r["calls"] for r in records) / n if n else None,
        failed_attempts=sum(r.get("failed_attempts", 0) for r in records),
        tokens_per_item=(
            sum(r["prompt_tokens"] + r["completion_tokens"] for r in records) / n if n else None
        ),
        cost=None if any(c is None for c in costs) else round(sum(costs), 6),
        unparsable_outputs=sum(r["unparsable"] for r in records),
        outcomes=dict(Counter(r["outcome"] or "unknown" for r in records)),
        items_with_errors=sum(bool(r["errors"]) for r in records),
        failures=failures(records),
        **fields,
    )


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


def failures(records: list[dict[str, Any]]) -> dict[str, int]:
    """Failed items by reason, the most common first."""
    counts = Counter(r for r in map(failure_reason, records) if r is not None)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
