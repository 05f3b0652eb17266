"""summary.json: what a run measured, always labelled simulated or not."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict

from govern.run.stats import Proportion, wilson

SIMULATED_LABEL = "SIMULATED run on govern's built-in sim/ models: these are not LLM results"


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
    calls_per_item: float | None
    tokens_per_item: float | None
    cost: float | None  # None when any call's price was unknown
    unparsable_outputs: int
    outcomes: dict[str, int]
    items_with_errors: int
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
    return Summary(
        label=SIMULATED_LABEL if fields["simulated"] else None,
        n=n,
        accuracy_strict=wilson(sum(r["correct_strict"] for r in records), n),
        accuracy_flexible=wilson(sum(r["correct_flexible"] for r in records), n),
        calls_per_item=sum(r["calls"] for r in records) / n if n else None,
        tokens_per_item=(
            sum(r["prompt_tokens"] + r["completion_tokens"] for r in records) / n if n else None
        ),
        cost=None if any(c is None for c in costs) else round(sum(costs), 6),
        unparsable_outputs=sum(r["unparsable"] for r in records),
        outcomes=dict(Counter(r["outcome"] or "unknown" for r in records)),
        items_with_errors=sum(bool(r["errors"]) for r in records),
        **fields,
    )
