"""What `govern run` prints: progress while it runs, a short table when it ends."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from govern.models.sim.params import is_firm_model
from govern.run.stats import Proportion
from govern.run.summary import MarketSummary, Summary


@contextmanager
def progress(total: int, description: str):
    """A progress bar on a terminal; silence elsewhere (CI, pipes). Yields the per-item hook."""
    if not sys.stderr.isatty():
        yield lambda record: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        advance: Callable[[dict[str, Any]], None] = lambda record: bar.advance(task)  # noqa: E731
        yield advance


def _share(p: Proportion) -> str:
    if p.value is None:
        return "-"
    return f"{p.value:.1%} [{p.low:.1%}, {p.high:.1%}]"


def print_summary(summary: Summary, folder: Path, notice: str | None) -> None:
    console = Console()
    if summary.label:
        console.print(f"[bold yellow]{summary.label}[/]")
    if notice:
        console.print(f"[yellow]{notice}[/]")
    table = Table(
        title=f"{summary.institution} ({summary.pattern}) on {summary.task}", show_header=False
    )
    table.add_column("measure")
    table.add_column("value")
    models = ", ".join(sorted(set(summary.models.values())))
    rows = [
        ("models", models + _offline_tag(summary)),
        (
            "items",
            f"{summary.n} of {summary.n_planned}" + ("" if summary.complete else " (incomplete)"),
        ),
        *(
            _market_rows(summary.market)
            if summary.market
            else [
                ("accuracy, strict (95% CI)", _share(summary.accuracy_strict)),
                ("accuracy, flexible (95% CI)", _share(summary.accuracy_flexible)),
            ]
        ),
        ("calls per item", f"{summary.calls_per_item:.1f}" if summary.calls_per_item else "-"),
        ("tokens per item", f"{summary.tokens_per_item:.0f}" if summary.tokens_per_item else "-"),
        ("cost", "unknown" if summary.cost is None else f"${summary.cost:.4f}"),
        ("outcomes", ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()))),
        ("unparsable decisions", str(summary.unparsable_outputs)),
        ("unparsed model outputs", str(summary.unparsed_turns)),
        *([("answered from the cache", str(summary.cached_calls))] if summary.cached_calls else []),
        *(
            [("re-asks for the format", f"{summary.reasks} ({summary.reasks_answered} answered)")]
            if summary.reasks
            else []
        ),
        ("wall time", f"{summary.wall_seconds:.1f} s"),
        ("data", summary.data_source),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    console.print(f"results in {folder}")


def _offline_tag(summary: Summary) -> str:
    if not summary.simulated:
        return ""
    firms = all(is_firm_model(m) for m in summary.models.values())
    return " (offline firms)" if firms else " (simulated)"


def _market_rows(market: MarketSummary) -> list[tuple[str, str]]:
    """The markets as the paper judges them: collusion tier, concentration, who gained."""

    def firms(values: list[float], digits: int = 0) -> str:
        return " / ".join(f"{v:.{digits}f}" for v in values)

    return [
        ("mean collusion tier (0-4)", f"{market.mean_tier:.2f}"),
        ("markets at tier 0/1/2/3/4", " / ".join(str(n) for n in market.tiers)),
        ("HHI excess over Nash", f"{market.hhi_excess:+.2f}"),
        ("CV excess over Nash", f"{market.cv_excess:+.2f}"),
        ("profit a round, per firm", firms(market.profit_per_round)),
        ("consumer surplus a round", f"{market.consumer_surplus_per_round:.0f}"),
        ("fines a market, per firm", firms(market.fines)),
        ("suspended rounds, per firm", firms(market.suspended_rounds, 1)),
        *(
            [("periods trained (learners)", f"{market.training_periods:,.0f}")]
            if market.training_periods
            else []
        ),
    ]


_SHOWN_REASONS = 10


def report_failures(summary: Summary, file: TextIO | None = None) -> int:
    """Print why items failed, grouped by reason (to stderr); the run's exit status.

    1 when every item failed, so a run that measured nothing never looks like success.
    """
    out = file if file is not None else sys.stderr
    failed = sum(summary.failures.values())
    if not failed:
        return 0
    print(f"failures: {failed} of {summary.n} items failed:", file=out)
    reasons = list(summary.failures.items())
    width = len(str(reasons[0][1]))
    for reason, count in reasons[:_SHOWN_REASONS]:
        print(f"  {count:>{width}}  {reason}", file=out)
    if len(reasons) > _SHOWN_REASONS:
        rest = sum(count for _, count in reasons[_SHOWN_REASONS:])
        print(
            f"  and {rest} more items for {len(reasons) - _SHOWN_REASONS} other reasons "
            "(all in summary.json)",
            file=out,
        )
    if failed == summary.n:
        print(f"govern: every item failed ({failed} of {summary.n}): nothing was scored", file=out)
        return 1
    return 0
