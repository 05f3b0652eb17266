"""Where an experiment's cells run: in this process, in worker processes, or on Ray.

An executor takes the cell jobs and a ``done`` callback, runs each job with
`govern.experiments.runner.run_cell`, and hands every outcome to ``done`` as it comes;
``done`` answers False when no further job should start (a budget is spent). Jobs
already running then finish their items in flight and stop, as `run_cell` checks the
budget before every item. The store, not the executor, carries the results: an executor
only returns each cell's outcome.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Protocol

from govern.experiments.runner import CellJob, CellOutcome, run_cell, worker_setup

Done = Callable[[CellOutcome], bool]


class Executor(Protocol):
    def run(self, jobs: Sequence[CellJob], done: Done) -> None: ...


def crashed(job: CellJob, error: BaseException) -> CellOutcome:
    """A job that raised: a bug or a lost worker, kept as the cell's failure."""
    return CellOutcome(job.cell, "failed", f"{type(error).__name__}: {error}")


class InlineExecutor:
    """One cell after another in this process (``--workers 1``)."""

    def run(self, jobs: Sequence[CellJob], done: Done) -> None:
        for job in jobs:
            on_sigterm = signal.getsignal(signal.SIGTERM)
            try:
                outcome = run_cell(job)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as error:
                outcome = crashed(job, error)
            finally:  # a cell's event loop leaves SIGTERM at its default, which kills at once
                if on_sigterm is not None:
                    with contextlib.suppress(ValueError):  # not in the main thread
                        signal.signal(signal.SIGTERM, on_sigterm)
            if not done(outcome):
                return


class ProcessExecutor:
    """Cells in worker processes, one cell per worker at a time: the simulator is CPU-bound
    and one event loop uses one core. Workers are spawned (no state inherited from this
    process) and die with it."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, jobs: Sequence[CellJob], done: Done) -> None:
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(jobs)) or 1,
            mp_context=get_context("spawn"),
            initializer=worker_setup,
        )
        waiting = list(jobs)
        running: dict[Future[CellOutcome], CellJob] = {}
        try:
            while waiting or running:
                while waiting and len(running) < self.workers:
                    job = waiting.pop(0)
                    running[pool.submit(run_cell, job)] = job
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = running.pop(future)
                    error = future.exception()
                    outcome = future.result() if error is None else crashed(job, error)
                    if not done(outcome):
                        waiting.clear()
        except BaseException:
            _stop_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Ask each worker to stop as SIGTERM stops a run: items in flight are abandoned, the
    cell's ledger is sealed as interrupted, and the cell resumes on the next run."""
    for process in list(getattr(pool, "_processes", {}).values()):
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
