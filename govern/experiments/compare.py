"""`govern compare`: configurations ranked by accuracy, with what the differences mean.

A *configuration* is a cell without its seed (institution, model, task, overlay); its seeds
are repeated measures of the same items. Decisions, made once here:

- Accuracy with one seed is the share right with its Wilson interval over items. With
  several seeds it is the mean of the per-seed accuracies with a t interval across seeds
  (`statistics.across_seeds`): seeds rerun the same items, so their items are never pooled
  as if independent. Intervals are clipped to [0, 1] for showing.
- Each configuration is compared with the best one of its task (highest accuracy; ties go
  to fewer tokens per item, then the name), paired on the items both finished: with one
  shared seed by exact McNemar (`statistics.compare_paired`); with several, each item's
  accuracy is averaged over the shared seeds and the per-item differences are tested by an
  exact paired sign-flip permutation test over items (`statistics.sign_flip_test_integers`:
  no Monte Carlo floor under the p-values that Holm then multiplies), so items stay the
  unit and seeds are averaged within them. This is the repeated-measures
  form of McNemar: with one seed the two tests give the same p-value. The seed-level
  comparison (`statistics.compare_seeds`) is reported beside it in JSON; with three seeds
  its smallest possible p is 0.25, so it cannot carry the markers.
- The p-values of every comparison shown are Holm-corrected together; markers use the
  corrected values. The effect size is Cohen's h of the best against the configuration.
- Dollars are null-aware: one item of unknown cost makes the configuration's cost unknown,
  never a smaller number. The cost-accuracy Pareto frontier is computed per task for calls,
  tokens and (when every configuration's is known) dollars per item.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from govern.experiments import statistics as st
from govern.experiments.results import CellResult, ItemOutcome, ResultsError, ResultSet
from govern.spec.errors import escape_controls

Measure = Literal["strict", "flexible"]
ALPHA = 0.05
CONFIDENCE = 0.95
MARKERS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
NOT_SIGNIFICANT = "ns"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Accuracy(_Model):
    value: float  # one seed: share right; several: mean of the per-seed shares
    low: float
    high: float
    interval: Literal["wilson", "t_across_seeds", "none"]
    sd_across_seeds: float | None
    per_seed: dict[str, float]  # seed -> accuracy (JSON keys are text)


class SeedLevel(_Model):
    """The same comparison with seeds as the unit (statistics.compare_seeds)."""

    n_seeds: int
    mean_difference: float
    low: float | None
    high: float | None
    p_value: float


class VersusBest(_Model):
    test: Literal["mcnemar_exact", "sign_flip_over_items"]
    seeds: list[int]  # the seeds both configurations ran
    n_items: int  # the items paired
    dropped_items: int  # items only one of the two finished, left out of the pairing
    difference: float  # best minus this configuration, in accuracy
    low: float
    high: float
    interval: Literal["newcombe", "bootstrap_over_items"]
    p_value: float
    p_holm: float
    cohens_h: float  # best against this configuration
    marker: str  # ***, **, * or ns, from p_holm
    seed_level: SeedLevel | None


class Frontier(_Model):
    calls: bool
    tokens: bool
    dollars: bool | None  # None when a dollar cost of the task is unknown


class Row(_Model):
    rank: int  # within its task, 1 = best
    configuration: str
    institution: str
    model: str
    task: str
    overlay: str | None
    seeds: list[int]
    cells: list[str]
    n_items: int  # distinct items finished, over all seeds
    n_per_seed: dict[str, int]
    failed: int  # item runs that ended in an error (counted wrong)
    accuracy: Accuracy
    accuracy_other: float  # the other measure (flexible when ranking by strict), mean over seeds
    calls_per_item: float
    tokens_per_item: float
    cost_per_item: float | None  # dollars; None: unknown
    best: bool
    vs_best: VersusBest | None
    note: str | None  # why a configuration is not compared with the best
    frontier: Frontier
    simulated: Literal["yes", "partly", "no"]


class SourceInfo(_Model):
    kind: Literal["experiment", "run"]
    path: str
    id: str


class Comparison(_Model):
    label: str | None
    simulated: Literal["yes", "partly", "no"]
    measure: Measure
    other_measure: Measure
    confidence: float
    alpha: float
    comparisons: int  # the family Holm corrects over
    sources: list[SourceInfo]
    rows: list[Row]  # by task (in order of appearance), then rank
    cells_without_items: list[str]
    notes: list[str]  # how to read the table: the tests used, the intervals, the markers


# --------------------------------------------------------------------------- building


@dataclass
class _Config:
    key: str
    cells: list[CellResult]  # with items, ordered by seed

    @property
    def first(self) -> CellResult:
        return self.cells[0]

    def outcomes(self, seed: int, measure: Measure) -> dict[str, bool]:
        cell = next(c for c in self.cells if c.seed == seed)
        return {i.item: _right(i, measure) for i in cell.items}


def _right(item: ItemOutcome, measure: Measure) -> bool:
    return item.correct_strict if measure == "strict" else item.correct_flexible


def _accuracy(config: _Config, measure: Measure) -> Accuracy:
    per_seed = {
        c.seed: sum(_right(i, measure) for i in c.items) / len(c.items) for c in config.cells
    }
    shown = {str(s): v for s, v in per_seed.items()}
    if len(config.cells) == 1:
        items = config.first.items
        one = st.accuracy([_right(i, measure) for i in items], confidence=CONFIDENCE, n_resamples=1)
        return Accuracy(
            value=one.value,
            low=one.wilson_low,
            high=one.wilson_high,
            interval="wilson",
            sd_across_seeds=None,
            per_seed=shown,
        )
    spread = st.across_seeds(per_seed, confidence=CONFIDENCE)
    assert spread.low is not None and spread.high is not None  # two or more seeds
    return Accuracy(
        value=spread.mean,
        low=max(0.0, spread.low),
        high=min(1.0, spread.high),
        interval="t_across_seeds",
        sd_across_seeds=spread.sd,
        per_seed=shown,
    )


def _spending(config: _Config) -> st.CostPerItem:
    """Calls, tokens and dollars per item: each seed's, then their mean over seeds."""
    per_seed = [
        st.cost_per_item(
            [
                {
                    "calls": i.calls,
                    "prompt_tokens": i.tokens,
                    "completion_tokens": 0,
                    "cost": i.cost,
                }
                for i in c.items
            ]
        )
        for c in config.cells
    ]
    dollars = [p.dollars for p in per_seed]
    return st.CostPerItem(
        n=sum(p.n for p in per_seed),
        calls=sum(p.calls for p in per_seed) / len(per_seed),
        tokens=sum(p.tokens for p in per_seed) / len(per_seed),
        dollars=None
        if None in dollars
        else sum(d for d in dollars if d is not None) / len(dollars),
    )


def _versus(
    best: _Config, other: _Config, measure: Measure
) -> tuple[dict[str, Any] | None, str | None]:
    """The paired comparison of ``best`` with ``other`` before correction, or why none."""
    seeds = sorted({c.seed for c in best.cells} & {c.seed for c in other.cells})
    if not seeds:
        return None, "no seed in common with the best configuration: nothing to pair"
    firsts = [best.outcomes(s, measure) for s in seeds]
    seconds = [other.outcomes(s, measure) for s in seeds]
    shared = set(firsts[0])
    for outcomes in (*firsts, *seconds):
        shared &= set(outcomes)
    everything = set().union(*firsts, *seconds)
    if not shared:
        return None, "no item finished by both this and the best configuration: nothing to pair"
    order = sorted(shared)
    dropped = len(everything) - len(shared)
    if len(seeds) == 1:
        paired = st.compare_paired(
            {k: firsts[0][k] for k in order},
            {k: seconds[0][k] for k in order},
            confidence=CONFIDENCE,
        )
        return {
            "test": "mcnemar_exact",
            "seeds": seeds,
            "n_items": paired.n,
            "dropped_items": dropped,
            "difference": paired.difference,
            "low": paired.low,
            "high": paired.high,
            "interval": "newcombe",
            "p_value": paired.p_value,
            "cohens_h": paired.cohens_h,
            "seed_level": None,
        }, None
    right_best = {k: sum(f[k] for f in firsts) for k in order}  # seeds right, per item
    right_other = {k: sum(s[k] for s in seconds) for k in order}
    test = st.sign_flip_test_integers([right_best[k] - right_other[k] for k in order])
    mean_best = {k: right_best[k] / len(seeds) for k in order}
    mean_other = {k: right_other[k] / len(seeds) for k in order}
    differences = [mean_best[k] - mean_other[k] for k in order]
    low, high = st.bootstrap_mean_interval(differences, confidence=CONFIDENCE, seed=0)
    acc_best = sum(mean_best.values()) / len(order)
    acc_other = sum(mean_other.values()) / len(order)
    by_seed = st.compare_seeds(
        {s: sum(f[k] for k in order) / len(order) for s, f in zip(seeds, firsts, strict=True)},
        {s: sum(o[k] for k in order) / len(order) for s, o in zip(seeds, seconds, strict=True)},
        confidence=CONFIDENCE,
    )
    return {
        "test": "sign_flip_over_items",
        "seeds": seeds,
        "n_items": len(order),
        "dropped_items": dropped,
        "difference": sum(differences) / len(order),
        "low": low,
        "high": high,
        "interval": "bootstrap_over_items",
        "p_value": test.p_value,
        "cohens_h": st.cohens_h(acc_best, acc_other),
        "seed_level": SeedLevel(
            n_seeds=by_seed.n_seeds,
            mean_difference=by_seed.mean_difference,
            low=by_seed.low,
            high=by_seed.high,
            p_value=by_seed.p_value,
        ),
    }, None


def marker(p_holm: float) -> str:
    for threshold, mark in MARKERS:
        if p_holm < threshold:
            return mark
    return NOT_SIGNIFICANT


def _frontiers(rows: list[dict[str, Any]]) -> None:
    """Set each row's frontier flags, within its task."""
    tasks = {r["task"] for r in rows}
    for task in tasks:
        group = [r for r in rows if r["task"] == task]
        for name, key in (("calls", "calls_per_item"), ("tokens", "tokens_per_item")):
            on = set(st.pareto_frontier([(r["accuracy"].value, r[key]) for r in group]))
            for index, row in enumerate(group):
                row.setdefault("frontier", {})[name] = index in on
        known = [r for r in group if r["cost_per_item"] is not None]
        on = set(st.pareto_frontier([(r["accuracy"].value, r["cost_per_item"]) for r in known]))
        for row in group:
            row["frontier"]["dollars"] = None if len(known) < len(group) else known.index(row) in on


def compare(results: ResultSet, measure: Measure = "strict") -> Comparison:
    """Rank the configurations of ``results`` and test each against its task's best."""
    other: Measure = "flexible" if measure == "strict" else "strict"
    configs: dict[str, _Config] = {}
    for cell in results.cells:
        if cell.items:
            configs.setdefault(cell.configuration, _Config(cell.configuration, [])).cells.append(
                cell
            )
    if not configs:
        where = ", ".join(escape_controls(str(s.path)) for s in results.sources)
        raise ResultsError(f"no finished items in {where}: nothing to compare yet")
    for config in configs.values():
        config.cells.sort(key=lambda c: c.seed)
    rows: list[dict[str, Any]] = []
    for config in configs.values():
        cell = config.first
        cells = config.cells
        spent = _spending(config)
        rows.append(
            {
                "configuration": config.key,
                "institution": cell.institution,
                "model": cell.model,
                "task": cell.task,
                "overlay": cell.overlay,
                "seeds": [c.seed for c in cells],
                "cells": [c.id for c in cells],
                "n_items": len({i.item for c in cells for i in c.items}),
                "n_per_seed": {str(c.seed): len(c.items) for c in cells},
                "failed": sum(i.failed for c in cells for i in c.items),
                "accuracy": _accuracy(config, measure),
                "accuracy_other": sum(
                    sum(_right(i, other) for i in c.items) / len(c.items) for c in cells
                )
                / len(cells),
                "calls_per_item": spent.calls,
                "tokens_per_item": spent.tokens,
                "cost_per_item": spent.dollars,
                "simulated": _simulated(cells),
                "_config": config,
            }
        )
    _frontiers(rows)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    ordered: list[dict[str, Any]] = []
    for task in tasks:
        group = sorted(
            (r for r in rows if r["task"] == task),
            key=lambda r: (-r["accuracy"].value, r["tokens_per_item"], r["configuration"]),
        )
        best = group[0]
        for rank, row in enumerate(group, 1):
            row["rank"] = rank
            row["best"] = row is best
            row["vs_best"], row["note"] = (
                (None, None) if row is best else _versus(best["_config"], row["_config"], measure)
            )
        ordered += group
    compared = [r for r in ordered if r["vs_best"] is not None]
    for row, p_holm in zip(
        compared, st.holm([r["vs_best"]["p_value"] for r in compared]), strict=True
    ):
        row["vs_best"] = VersusBest(**row["vs_best"], p_holm=p_holm, marker=marker(p_holm))
    final = [Row(**{k: v for k, v in r.items() if k != "_config"}) for r in ordered]
    return Comparison(
        label=results.label,
        simulated=results.simulated,
        measure=measure,
        other_measure=other,
        confidence=CONFIDENCE,
        alpha=ALPHA,
        comparisons=len(compared),
        sources=[SourceInfo(kind=s.kind, path=str(s.path), id=s.id) for s in results.sources],
        rows=final,
        cells_without_items=[c.id for c in results.cells if not c.items],
        notes=_notes(final, measure, len(compared)),
    )


def _simulated(cells: list[CellResult]) -> Literal["yes", "partly", "no"]:
    kinds = {c.simulated for c in cells}
    return "yes" if kinds == {"yes"} else "partly" if kinds & {"yes", "partly"} else "no"


_MEASURES = {
    "strict": "strict accuracy (the answer after '#### ', as lm-evaluation-harness's strict match)",
    "flexible": "flexible accuracy (the last number in the output)",
}
# tasks whose items are not answered questions: what their accuracy counts instead
_TASK_MEASURES = {
    "hanoi": "a tower counts as solved when its final state is the goal, reached in the "
    "shortest solution's number of moves (so with no wrong move); strict and flexible agree",
}


def _notes(rows: list[Row], measure: Measure, family: int) -> list[str]:
    tests = {r.vs_best.test for r in rows if r.vs_best is not None}
    intervals = {r.accuracy.interval for r in rows}
    tasks = {r.task for r in rows}  # a task's label: hanoi-10 is task hanoi
    special = {t: _TASK_MEASURES.get(t.partition("-")[0]) for t in sorted(tasks)}
    if all(special.values()):  # every row is a task whose accuracy means something else
        accuracy = "; ".join(dict.fromkeys(w for w in special.values() if w))
    else:
        accuracy = "; ".join(
            [_MEASURES[measure], *(f"on {t}: {w}" for t, w in special.items() if w)]
        )
    notes = [
        f"accuracy: {accuracy}; failed items count as wrong. Ranked within each task.",
    ]
    said = []
    if "wilson" in intervals:
        said.append("one seed: 95% Wilson interval over items")
    if "t_across_seeds" in intervals:
        said.append(
            "several seeds: mean of the per-seed accuracies and a 95% t interval across seeds "
            "(seeds are repeated measures of the same items, never pooled), clipped to [0, 1]"
        )
    notes.append("interval: " + "; ".join(said) + ".")
    if family:
        used = []
        if "mcnemar_exact" in tests:
            used.append("one shared seed: exact McNemar test")
        if "sign_flip_over_items" in tests:
            used.append(
                "several shared seeds: each item's accuracy averaged over the seeds, then an "
                "exact paired sign-flip permutation test over items"
            )
        notes.append(
            "vs best: accuracy points behind the best configuration of the same task, paired on "
            f"the items both finished ({'; '.join(used)}). p (Holm): Holm-corrected across the "
            f"{family} comparison{'s' if family != 1 else ''} shown; *** < 0.001, ** < 0.01, "
            "* < 0.05, ns: not significant. h: Cohen's h of the best against this one."
        )
    notes.append(
        "frontier: on the cost-accuracy Pareto frontier of its task (tokens per item): no "
        "other configuration is as accurate for fewer tokens. $/item: unknown when any call's "
        "price is unknown."
    )
    return notes


# --------------------------------------------------------------------------- rendering


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _interval(acc: Accuracy) -> str:
    return f"{100 * acc.low:.1f}–{100 * acc.high:.1f}"


def _dollars(value: float | None) -> str:
    if value is None:
        return "unknown"
    return "$0" if value == 0 else f"${value:.4g}"


def _versus_text(row: Row) -> tuple[str, str, str]:
    if row.best:
        return "best", "", ""
    if row.vs_best is None:
        return "not paired", "", ""
    v = row.vs_best
    behind = round(-100 * v.difference, 1)
    points = "0.0" if behind == 0 else f"{behind:+.1f}"  # never "-0.0"
    return f"{points} {v.marker}", f"{v.p_holm:.3g}", f"{v.cohens_h + 0.0:.2f}"


def table_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """The table as text cells, the same for the terminal, Markdown and HTML."""
    overlays = any(r.overlay is not None for r in comparison.rows)
    headers = ["#", "institution", "model", *(["overlay"] if overlays else []), "task"]
    headers += [comparison.measure, "95% interval", comparison.other_measure]
    headers += ["calls/item", "tokens/item", "$/item", "items", "seeds"]
    headers += ["vs best", "p (Holm)", "h", "frontier"]
    body = []
    for row in comparison.rows:
        versus, p, h = _versus_text(row)
        body.append(
            [
                str(row.rank),
                row.institution,
                row.model,
                *([row.overlay or ""] if overlays else []),
                row.task,
                _pct(row.accuracy.value),
                _interval(row.accuracy),
                _pct(row.accuracy_other),
                f"{row.calls_per_item:.1f}",
                f"{row.tokens_per_item:,.0f}",
                _dollars(row.cost_per_item),
                _items(row),
                str(len(row.seeds)),
                versus,
                p,
                h,
                "yes" if row.frontier.tokens else "",
            ]
        )
    return headers, body


def _items(row: Row) -> str:
    counts = sorted(set(row.n_per_seed.values()))
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def footer(comparison: Comparison) -> list[str]:
    lines = list(comparison.notes)
    lines += [f"not paired: {r.configuration}: {r.note}." for r in comparison.rows if r.note]
    if comparison.cells_without_items:
        waiting = comparison.cells_without_items
        shown = ", ".join(waiting[:5]) + (
            f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
        )
        lines.append(f"not shown: {len(waiting)} cells with no finished items yet ({shown}).")
    return lines


def render_json(comparison: Comparison) -> str:
    """JSON whose first line carries the label, so even `head -1` says SIMULATED."""
    data = comparison.model_dump(mode="json")
    label = data.pop("label")
    rest = json.dumps(data, indent=2, ensure_ascii=False)
    return '{"label": ' + json.dumps(label, ensure_ascii=False) + ",\n" + rest[2:] + "\n"


def markdown_cell(text: str) -> str:
    """Table cell text that Markdown shows as written: no HTML, no pipes, no emphasis."""
    text = " ".join(text.split())
    for char, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, escaped)
    for char in "\\|`*_[]":
        text = text.replace(char, "\\" + char)
    return text


def render_markdown(comparison: Comparison) -> str:
    headers, body = table_rows(comparison)
    lines = []
    if comparison.label:
        lines += [f"**{markdown_cell(comparison.label)}**", ""]
    lines.append("| " + " | ".join(markdown_cell(h) for h in headers) + " |")
    lines.append(
        "|" + "|".join("---" if i in (1, 2, 3) else "---:" for i in range(len(headers))) + "|"
    )
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in body]
    lines.append("")
    lines += [markdown_cell(line) for line in footer(comparison)]
    return "\n".join(lines) + "\n"


_TEXT_COLUMNS = frozenset({"institution", "model", "overlay", "task"})


def render_text(comparison: Comparison) -> str:
    """The table for a terminal: plain aligned text, never wrapped (pipe it to a file freely)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    headers, body = table_rows(comparison)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in headers:
        justify = "left" if header in _TEXT_COLUMNS else "right"
        table.add_column(header, justify=justify, no_wrap=True)
    for row in body:
        table.add_row(*(Text(escape_controls(c)) for c in row))
    console = Console(width=400, file=io.StringIO(), record=True, color_system=None)
    if comparison.label:
        console.print(Text(escape_controls(comparison.label)), soft_wrap=True)
    console.print(table)
    for line in footer(comparison):
        console.print(Text(escape_controls(line)), soft_wrap=True)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"
