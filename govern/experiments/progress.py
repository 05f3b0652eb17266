"""What `govern run EXPERIMENT` shows while it runs and when it ends.

On a terminal: one bar for the whole experiment (items stored of items planned), with
the cells finished, running and failed, the calls and cost so far, and an ETA. Elsewhere
(CI, a pipe, a log file): one JSON line per cell as it ends and one every few seconds
with the same counts. The counts come from the results store, which every worker writes,
so they are the same whichever executor runs the cells. A cell that fails is said at
once, on the console, with its reason.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape

from govern.experiments.runner import CellOutcome, ExperimentOutcome, PreparedExperiment
from govern.experiments.store import ResultsStore, StoreError
from govern.run.summary import SIMULATED_LABEL
from govern.spec.errors import escape_controls

POLL_SECONDS = 0.5  # the bar's refresh
LOG_SECONDS = 10.0  # a JSON progress line when not on a terminal


def shown(text: str | None) -> str:
    """Text from a run (an error naming a model, a file) as the console shows it: control
    and bidirectional characters escaped, and no rich markup taken from it."""
    lines = (text or "").splitlines()
    return escape("\n".join(escape_controls(line) for line in lines))


def _counts(store: ResultsStore) -> dict[str, Any]:
    spend = store.spend()
    statuses: dict[str, int] = {}
    for cell in store.cells():
        statuses[cell.status] = statuses.get(cell.status, 0) + 1
    return {
        "items": spend.items,
        "calls": spend.calls,
        "tokens": spend.tokens,
        "cost": round(spend.cost, 6),
        "unknown_cost_items": spend.unknown_cost,
        "cells": statuses,
    }


def _describe(counts: dict[str, Any], total_cells: int, simulated: bool) -> str:
    cells = counts["cells"]
    cost = "simulated, no cost" if simulated else f"${counts['cost']:,.4f}"
    if counts["unknown_cost_items"] and not simulated:
        cost += f" (+{counts['unknown_cost_items']} items of unknown cost)"
    return (
        f"cells {cells.get('finished', 0)}/{total_cells} done, {cells.get('running', 0)} "
        f"running, {cells.get('failed', 0)} failed | {counts['calls']:,} calls, {cost}"
    )


@contextmanager
def experiment_progress(prepared: PreparedExperiment) -> Iterator[Callable[[CellOutcome], None]]:
    """Show progress while the block runs; yields the hook each cell's outcome is given to."""
    total = sum(prepared.planned.values())
    cells = len(prepared.planned)
    tty = sys.stderr.isatty()
    console = Console(stderr=True)
    stop = threading.Event()
    lock = threading.Lock()

    def said(outcome: CellOutcome) -> None:
        with lock:
            if tty:
                if outcome.end == "failed":
                    console.print(f"[red]cell {outcome.cell} failed:[/] {shown(outcome.reason)}")
            else:
                line = {"event": "cell", "cell": outcome.cell, "end": outcome.end}
                if outcome.reason:
                    line["reason"] = outcome.reason
                print(json.dumps(line), file=sys.stderr, flush=True)

    if tty:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        task = bar.add_task(prepared.loaded.experiment.id, total=total)

        def show(counts: dict[str, Any]) -> None:
            text = _describe(counts, cells, prepared.simulated)
            bar.update(task, completed=counts["items"], description=text)

    else:
        last = [0.0]

        def show(counts: dict[str, Any]) -> None:
            now = time.monotonic()
            if now - last[0] >= LOG_SECONDS:
                last[0] = now
                line = {"event": "progress", "planned": total, **counts}
                with lock:
                    print(json.dumps(line), file=sys.stderr, flush=True)

    def poll() -> None:
        try:
            with ResultsStore.open(
                prepared.store_path, prepared.loaded.experiment.id, prepared.digest
            ) as store:
                while not stop.wait(POLL_SECONDS):
                    show(_counts(store))
        except StoreError:
            return  # progress is a courtesy: the run goes on without it

    watcher = threading.Thread(target=poll, name="govern-progress", daemon=True)
    if tty:
        bar.start()
    watcher.start()
    try:
        yield said
    finally:
        stop.set()
        watcher.join()
        if tty:
            bar.stop()


def print_outcome(prepared: PreparedExperiment, outcome: ExperimentOutcome) -> None:
    """The end of an experiment: what ran, what it spent, what failed, and what next."""
    console = Console()
    if prepared.simulated:
        console.print(f"[bold yellow]{SIMULATED_LABEL}[/]")
    ends = outcome.ends
    finished = sum(o.end == "finished" for o in ends.values())
    skipped = len(prepared.planned) - len({j.cell for j in prepared.jobs})
    spend = outcome.spend
    console.print(
        f"{prepared.loaded.experiment.id}: {outcome.stored:,} of {outcome.planned:,} items "
        f"stored; cells run now: {finished} finished of {len(ends)}"
        + (f" ({skipped} were finished before)" if skipped else "")
    )
    cost = "nothing (simulated)" if prepared.simulated else f"${spend.cost:,.4f}"
    if spend.unknown_cost and not prepared.simulated:
        cost += f", and {spend.unknown_cost:,} items of unknown cost"
    console.print(f"spent in all: {spend.calls:,} calls, {spend.tokens:,} tokens, {cost}")
    for failed in outcome.failed:
        console.print(f"[red]cell {failed.cell} failed:[/] {shown(failed.reason)}")
    if outcome.budget is not None:
        console.print(
            f"[yellow]stopped: {shown(outcome.budget)}.[/] Raise the budget (limits: in the "
            "experiment, or --max-calls/--max-tokens/--max-dollars) and run the same command "
            "again to resume."
        )
    if outcome.failed_items:
        console.print(
            f"[yellow]{outcome.failed_items:,} items failed[/] (their reasons are in the store "
            "and in each cell's results.jsonl); run the same command with --retry-failed to "
            "run them again"
        )
    console.print(
        f"results: {prepared.folder}  (govern compare {prepared.folder}; "
        f"govern report {prepared.folder}; govern audit {prepared.folder})"
    )
