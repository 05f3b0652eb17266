"""What `govern run` prints: progress while it runs, a short table when it ends."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from govern.run.stats import Proportion
from govern.run.summary import Summary


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
        ("models", models + (" (simulated)" if summary.simulated else "")),
        (
            "items",
            f"{summary.n} of {summary.n_planned}" + ("" if summary.complete else " (incomplete)"),
        ),
        ("accuracy, strict (95% CI)", _share(summary.accuracy_strict)),
        ("accuracy, flexible (95% CI)", _share(summary.accuracy_flexible)),
        ("calls per item", f"{summary.calls_per_item:.1f}" if summary.calls_per_item else "-"),
        ("tokens per item", f"{summary.tokens_per_item:.0f}" if summary.tokens_per_item else "-"),
        ("cost", "unknown" if summary.cost is None else f"${summary.cost:.4f}"),
        ("outcomes", ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()))),
        ("unparsable outputs", str(summary.unparsable_outputs)),
        ("wall time", f"{summary.wall_seconds:.1f} s"),
        ("data", summary.data_source),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    console.print(f"results in {folder}")
