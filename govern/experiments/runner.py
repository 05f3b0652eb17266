"""Run an experiment: every cell through the single-run path, into one results store.

The experiment folder (``--out``, default ``runs/<experiment id>``, so that re-running the
same command finds it and resumes)::

    experiment.json   the experiment: its file, digests, command, versions and cells
    results.sqlite    the results store: one row per finished item, committed as it finishes
    cells/<CELL>/     each cell's own run folder, exactly as `govern run --out` writes one
    retries/<CELL>/<N>/  runs of --retry-failed: a cell's failed items, run again

A cell is an ordinary run of an ordinary manifest (`govern.run.runner.prepare` takes the
experiment file and the cell's id), so a cell resumes as a single run does: its ledger
vouches for its finished items, and the rest run. The store is the experiment's index:
every finished item is recorded there as its run writes it, and a cell whose run folder
holds items the store lacks (a kill between the two writes) has them recorded again
before it goes on, so the store ends with every (cell, item, seed) exactly once.

Cells run in worker processes (`govern.experiments.executors`); the store's own totals
are the experiment's spend, checked against its limits before every item starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from govern import __version__
from govern.experiments.spec import Cell, Limits, LoadedExperiment, TaskEntry
from govern.experiments.store import (
    CellStatus,
    ResultsStore,
    Spend,
    StoreError,
)
from govern.files import write_atomic
from govern.ledger.binding import RESULTS
from govern.ledger.keys import LedgerKeyError, load_keyring
from govern.ledger.proofs import ProofError, read_head
from govern.ledger.writer import FsyncPolicy, head_path
from govern.models.sim.params import is_firm_model, is_simulated
from govern.run.request import DEFAULT_CONCURRENCY, RunRequest, RunSetupError
from govern.run.resume import (
    AlreadyComplete,
    ResumeError,
    is_run_folder,
    read_request,
    read_run,
)
from govern.spec.checks import load_checked
from govern.spec.digest import canonical_json, semantic_digest
from govern.spec.errors import SpecInvalid
from govern.spec.loader import project_root
from govern.tasks.base import TaskDataError, TaskItem
from govern.tasks.cournot.task import CournotTask
from govern.tasks.hanoi.task import DEFAULT_DISKS, HanoiTask
from govern.tasks.registry import get_task
from govern.text import printable

EXPERIMENT_FILE = "experiment.json"
STORE_FILE = "results.sqlite"
CELLS_FOLDER = "cells"
RETRIES_FOLDER = "retries"
LEDGER = "ledger.jsonl"

CellEnd = Literal["finished", "failed", "stopped", "interrupted"]


@dataclass(frozen=True)
class ExperimentRequest:
    """What `govern run EXPERIMENT.yaml` is asked to do."""

    manifest: Path
    out: Path | None = None
    workers: int | None = None  # worker processes; None: one per core
    executor: Literal["process", "ray"] = "process"
    ray_address: str | None = None
    concurrency: int | None = None  # items and calls in flight within each cell
    retry_failed: bool = False
    force_new: bool = False
    data: Path | None = None
    download: bool = False
    api_base: str | None = None
    key_file: Path | None = None
    fsync: FsyncPolicy = "seal"
    timeout: float | None = None
    deadline: float | None = None
    limits: Limits = field(default_factory=Limits)  # given on the command line: they win
    command: str = ""


@dataclass(frozen=True)
class CellJob:
    """One cell's run, as a worker process (or a Ray task) receives it: plain data only."""

    experiment: Path
    home: Path  # the experiment folder
    experiment_id: str
    digest: str
    store: Path
    cell: str
    seed: int
    folder: Path
    retry: bool = False  # items: the cell's recorded failures, run again
    items: tuple[str, ...] | None = None
    settings: RunRequest = field(default_factory=lambda: RunRequest(manifest=Path()))
    limits: Limits = field(default_factory=Limits)
    cell_digest: str | None = None  # the cell's, as planned: it runs only if still that

    @property
    def key_file(self) -> Path | None:
        return self.settings.key_file

    def request(self) -> RunRequest:
        """The cell's run, as `govern.run.runner.prepare` takes it: the experiment's settings
        (concurrency, data, keys, timeouts), and the cell, its items and its folder."""
        return replace(
            self.settings,
            manifest=self.experiment,
            cell=self.cell,
            items=self.items,
            out=self.folder,
        )


@dataclass(frozen=True)
class CellOutcome:
    cell: str
    end: CellEnd
    reason: str | None = None  # why it failed or stopped
    recorded: int = 0  # items this job added to the store


@dataclass
class PreparedExperiment:
    request: ExperimentRequest
    loaded: LoadedExperiment
    folder: Path
    digest: str
    planned: dict[str, int]  # cell id -> items it runs
    jobs: list[CellJob]
    limits: Limits
    simulated: bool
    notices: list[str] = field(default_factory=list)
    lock: int | None = None  # the experiment folder, held while this process runs it

    @property
    def store_path(self) -> Path:
        return self.folder / STORE_FILE

    def release(self) -> None:
        """Let another `govern run` of this experiment start (exiting does it too)."""
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None


@dataclass
class ExperimentOutcome:
    ends: dict[str, CellOutcome]
    spend: Spend
    stored: int
    planned: int
    failed_items: int  # stored items whose outcome is "error"
    budget: str | None = None  # the spent budget that stopped the experiment

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.ends.values() if o.end == "failed"]


# -- preparing ---------------------------------------------------------------------------


def is_experiment(path: Path) -> bool:
    """Whether the spec at ``path`` is an experiment (a spec that cannot be read is not)."""
    from govern.spec.loader import spec_kind
    from govern.spec.yaml_source import read_yaml

    try:
        return spec_kind(read_yaml(path)) == "experiment"
    except (SpecInvalid, OSError, ValueError):
        return False


def prepare_experiment(request: ExperimentRequest) -> PreparedExperiment:
    """Check the experiment and everything its cells need, open (or resume) its store and
    plan the cells still to run; nothing is run and no model is called."""
    if request.data is not None:  # planned as its cells will load it
        request = replace(request, data=request.data.resolve())
    loaded = load_checked(request.manifest)
    if not isinstance(loaded, LoadedExperiment):
        raise RunSetupError(f"{printable(request.manifest)} is not an experiment")
    if request.concurrency is not None and request.concurrency < 1:
        raise RunSetupError("concurrency must be at least 1")
    if request.workers is not None and request.workers < 1:
        raise RunSetupError("--workers must be at least 1")
    exp = loaded.experiment
    _check_keys(request.key_file)
    items = _task_items(loaded, request)
    planned: dict[str, int] = {}
    digests: dict[str, str] = {}
    for cell in loaded.cells:
        selected = _cell_items(cell, items[cell.task.label])
        planned[cell.id] = len(selected)
        digests[cell.id] = _cell_digest(cell, selected)
    digest = hashlib.sha256(
        canonical_json({"experiment": exp.id, "cells": digests}).encode()
    ).hexdigest()
    folder = request.out or project_root(Path.cwd()) / "runs" / exp.id
    notices, lock = _make_folder(folder, request.force_new)
    try:
        # with --force-new, _make_folder has set any earlier store aside already
        with ResultsStore.open(folder / STORE_FILE, exp.id, digest, cells=digests) as store:
            jobs = _plan(request, loaded, folder, digest, planned, store, notices)
        limits = _limits(exp.limits, request.limits)
        simulated = all(
            is_simulated(m) or is_firm_model(m) for c in loaded.cells for m in _models_of(c)
        )
        prepared = PreparedExperiment(
            request, loaded, folder, digest, planned, jobs, limits, simulated, notices, lock
        )
        write_atomic(folder / EXPERIMENT_FILE, json.dumps(_description(prepared), indent=2) + "\n")
    except BaseException as exc:
        os.close(lock)
        if isinstance(exc, StoreError):
            raise RunSetupError(str(exc)) from None
        raise
    return prepared


def _check_keys(key_file: Path | None) -> None:
    """The ledger keys, found (or created, said aloud) once, before any worker starts."""
    from govern.run.runner import ledger_keyring

    ledger_keyring(key_file)


def _task_items(loaded: LoadedExperiment, request: ExperimentRequest) -> dict[str, list[TaskItem]]:
    found: dict[str, list[TaskItem]] = {}
    for entry in loaded.experiment.tasks:
        try:
            found[entry.label] = _items_of(entry, loaded, request.data, request.download)
        except (KeyError, TaskDataError) as exc:
            raise RunSetupError(str(exc.args[0])) from None
    return found


def _items_of(
    entry: TaskEntry, loaded: LoadedExperiment, data: Path | None, download: bool
) -> list[TaskItem]:
    """The items a task entry offers the experiment's cells (each takes its selection)."""
    name = entry.name
    task = get_task(name)
    if isinstance(task, HanoiTask):  # a tower is made, not read: the one the entry names
        return task.towers(entry.disks or DEFAULT_DISKS)
    items = task.load(data, allow_download=download).items
    if isinstance(task, CournotTask):  # markets are made, not read: as many as asked
        return task.markets(max(e.limit or 1 for e in loaded.experiment.tasks if e.name == name))
    return items


def _cell_items(cell: Cell, items: list[TaskItem]) -> list[TaskItem]:
    from govern.run.runner import select_items

    return select_items(items, limit=cell.task.limit, sample=cell.task.sample)


def _cell_digest(cell: Cell, items: list[TaskItem]) -> str:
    """What a cell's results depend on: its manifest, its items and its seed."""
    from govern.run.runner import items_digest

    text = canonical_json(
        {
            "manifest": semantic_digest(cell.manifest),
            "items": items_digest(items),
            "seed": cell.seed,
        }
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _models_of(cell: Cell) -> set[str]:
    from govern.engine.context import models_used

    return models_used(cell.manifest.institution, cell.manifest.models)


def _make_folder(folder: Path, force_new: bool) -> tuple[list[str], int]:
    """The experiment folder, held by this process (see `_hold`); with --force-new, an
    earlier experiment's store and cells are moved aside (never deleted)."""
    if folder.exists() and not folder.is_dir():
        raise RunSetupError(f"{folder} exists and is not a folder; choose another --out")
    notices = []
    if folder.is_dir() and not _an_experiment(folder):
        what = "a single run" if is_run_folder(folder) else "no experiment"
        raise RunSetupError(f"{folder} is not empty and holds {what}; choose another --out folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunSetupError(
            f"cannot create the experiment folder {folder}: {exc.strerror}"
        ) from None
    lock = _hold(folder)
    try:
        notices += _set_aside(folder, force_new)
    except BaseException:
        os.close(lock)
        raise
    return notices, lock


def _an_experiment(folder: Path) -> bool:
    """An experiment's folder (its store may have been deleted: the cells' run folders
    rebuild it), or one a run killed at once left with nothing in it yet."""
    entries = list(folder.iterdir())
    if any((folder / name).exists() for name in (STORE_FILE, EXPERIMENT_FILE)):
        return True
    return all(p.name == CELLS_FOLDER and p.is_dir() and not any(p.iterdir()) for p in entries)


def _hold(folder: Path) -> int:
    """Lock the experiment folder for this process (flock on the folder itself, released
    when the process ends however it ends): a second `govern run` of the same experiment
    at once would race the first for its cells' ledgers and statuses, so it is refused."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunSetupError(
            f"{folder} is being run by another `govern run` right now; wait for it to end (or "
            "stop it), then run the same command again to resume"
        ) from None
    return fd


def _set_aside(folder: Path, force_new: bool) -> list[str]:
    notices = []
    if force_new:  # afresh, changed or not: the store and the cells' runs are set aside
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        said = {CELLS_FOLDER: "cells were", RETRIES_FOLDER: "retries were", STORE_FILE: "store was"}
        for name, what in said.items():
            if (folder / name).exists():
                aside = folder / f"{name}.replaced-{stamp}"
                (folder / name).rename(aside)
                notices.append(f"the earlier experiment's {what} moved to {aside}")
                for log in ("-wal", "-shm"):  # the store's log goes with it, named alike
                    if (folder / f"{name}{log}").exists():
                        (folder / f"{name}{log}").rename(aside.with_name(aside.name + log))
    try:
        (folder / CELLS_FOLDER).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunSetupError(
            f"cannot create the cells' folder {folder / CELLS_FOLDER}: {exc.strerror}"
        ) from None
    return notices


def _limits(given: Limits | None, overrides: Limits) -> Limits:
    merged = (given or Limits()).model_dump()
    merged.update({k: v for k, v in overrides.model_dump().items() if v is not None})
    return Limits(**merged)


def _plan(
    request: ExperimentRequest,
    loaded: LoadedExperiment,
    folder: Path,
    digest: str,
    planned: dict[str, int],
    store: ResultsStore,
    notices: list[str],
) -> list[CellJob]:
    """The cells still to run: unfinished ones, and with --retry-failed those with failures.

    A cell with stored items whose run folder or ledger is gone (deleted by hand) has
    numbers that no ledger vouches for any more: they are dropped, what is left of its run
    folder and its retries are moved aside (never deleted), and the cell runs again."""
    counts = store.counts()
    for cell in loaded.cells:
        main = folder / CELLS_FOLDER / cell.id
        if not counts.get(cell.id) or (is_run_folder(main) and (main / LEDGER).is_file()):
            continue
        dropped = store.clear_cell(cell.id)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for gone, aside in [
            (main, folder / f"{CELLS_FOLDER}.replaced-{stamp}" / cell.id),
            (
                folder / RETRIES_FOLDER / cell.id,
                folder / f"{RETRIES_FOLDER}.replaced-{stamp}" / cell.id,
            ),
        ]:
            if gone.exists() or gone.is_symlink():
                aside.parent.mkdir(exist_ok=True)
                gone.rename(aside)
        notices.append(
            f"cell {cell.id} has no run folder with a ledger ({main}), so its {dropped} stored "
            "items are vouched for by no ledger: they were dropped and the cell runs again"
        )
    status = {c.id: c.status for c in store.cells()}
    cell_digests = {c.id: c.digest for c in store.cells()}
    stored = store.counts()
    limits = _limits(loaded.experiment.limits, request.limits)
    common = dict(
        experiment=request.manifest.resolve(),
        home=folder.resolve(),
        experiment_id=loaded.experiment.id,
        digest=digest,
        store=(folder / STORE_FILE).resolve(),
        settings=RunRequest(
            manifest=request.manifest.resolve(),
            concurrency=request.concurrency or DEFAULT_CONCURRENCY,
            data=request.data.resolve() if request.data else None,
            download=request.download,
            api_base=request.api_base,
            key_file=request.key_file.resolve() if request.key_file else None,
            fsync=request.fsync,
            timeout=request.timeout,
            deadline=request.deadline,
        ),
        limits=limits,
    )
    jobs = []
    for cell in loaded.cells:
        done = status.get(cell.id) == "finished" and stored.get(cell.id, 0) >= planned[cell.id]
        main = folder / CELLS_FOLDER / cell.id
        if not done:
            jobs.append(
                CellJob(
                    cell=cell.id,
                    seed=cell.seed,
                    folder=main.resolve(),
                    cell_digest=cell_digests.get(cell.id),
                    **common,  # type: ignore[arg-type]
                )
            )
        failed = store.failed(cell.id, cell.seed)
        if request.retry_failed and failed:
            retry = _retry_folder(folder, cell.id)
            jobs.append(
                CellJob(
                    cell=cell.id,
                    seed=cell.seed,
                    folder=retry.resolve(),
                    retry=True,
                    items=_retrying(retry) or tuple(sorted(failed)),
                    cell_digest=cell_digests.get(cell.id),
                    **common,  # type: ignore[arg-type]
                )
            )
    return jobs


def _retrying(folder: Path) -> tuple[str, ...] | None:
    """The items an unfinished retry run started with: it resumes with those (some may be
    stored as retried already), or it would be refused as a run with other settings."""
    if not is_run_folder(folder):
        return None
    try:
        items = read_request(folder).get("items")
    except ResumeError:
        return None  # the run says what is wrong with it when it is resumed
    return tuple(items) if isinstance(items, list) else None


def _retry_folder(folder: Path, cell: str) -> Path:
    """The cell's unfinished retry run, to resume, or the next one's folder."""
    base = folder / RETRIES_FOLDER / cell
    n = 1
    while (base / str(n)).exists():
        if is_run_folder(base / str(n)) and not _complete(base / str(n)):
            break
        n += 1
    return base / str(n)


def _complete(folder: Path) -> bool:
    try:
        return bool(read_head(head_path(folder / "ledger.jsonl")).get("reason") == "complete")
    except ProofError:
        return False


def _description(prepared: PreparedExperiment) -> dict[str, Any]:
    """experiment.json: what the report and `govern audit` read besides the store."""
    loaded, request = prepared.loaded, prepared.request
    from govern.governance.guard import file_digests

    return {
        "experiment": loaded.experiment.id,
        "description": loaded.experiment.description,
        "manifest": str(request.manifest.resolve()),
        "digest": prepared.digest,
        "files": {printable(str(k)): v for k, v in file_digests(loaded.files).items()},
        "command": request.command,
        "govern_version": __version__,
        "python": platform.python_version(),
        "simulated": prepared.simulated,
        "limits": prepared.limits.model_dump(),
        "cells": [
            {
                "id": cell.id,
                "institution": cell.institution,
                "model": cell.model,
                "task": cell.task.label,
                "seed": cell.seed,
                "overlay": cell.overlay,
                "items": prepared.planned[cell.id],
                "folder": f"{CELLS_FOLDER}/{cell.id}",
                "models": sorted(_models_of(cell)),
            }
            for cell in loaded.cells
        ],
    }


# -- one cell, in a worker -----------------------------------------------------------------


def spent(spend: Spend, limits: Limits) -> str | None:
    """Which budget the spend has reached, said for the user; None while all are left."""
    if limits.calls is not None and spend.calls >= limits.calls:
        return f"the experiment's call budget is spent: {spend.calls:,} of {limits.calls:,} calls"
    if limits.tokens is not None and spend.tokens >= limits.tokens:
        return (
            f"the experiment's token budget is spent: {spend.tokens:,} of {limits.tokens:,} tokens"
        )
    if limits.dollars is not None and spend.cost >= limits.dollars:
        return (
            f"the experiment's dollar budget is spent: ${spend.cost:,.4f} of ${limits.dollars:,.4f}"
        )
    if limits.dollars is not None and spend.unknown_cost:  # it could be spent unseen
        return (
            f"the experiment's dollar budget cannot be kept: {spend.unknown_cost:,} "
            f"item{'s' if spend.unknown_cost != 1 else ''} cost an amount no price is known "
            f"for (${spend.cost:,.4f} known of "
            f"${limits.dollars:,.4f}); give their models' prices, or budget calls or tokens"
        )
    return None


def run_cell(job: CellJob) -> CellOutcome:
    """Run (or resume) one cell, recording each finished item in the store as it finishes.
    A worker's whole task: everything it needs is in the job."""
    global _in_job
    _in_job = True
    try:
        with ResultsStore.open(job.store, job.experiment_id, job.digest) as store:
            try:
                return run_cell_into(job, store)
            except Exception as error:  # the executor says it; the cell must not stay "running"
                if not job.retry:
                    with contextlib.suppress(StoreError):
                        reason = f"{type(error).__name__}: {error}"
                        store.set_cell_status(job.cell, "failed", reason=reason)
                raise
    finally:
        _in_job = False


def run_cell_into(job: CellJob, store: ResultsStore) -> CellOutcome:
    """Run (or resume) one cell, recording into ``store``: the experiment's own store, or on
    Ray a proxy to the store kept on the driver's node."""
    from govern.run.runner import execute, prepare

    record = store.replace_failed if job.retry else store.record_item
    recorded = _reconcile(job, store)

    def keep(item: dict[str, Any]) -> None:
        nonlocal recorded
        recorded += record(job.cell, job.seed, item)

    def set_status(status: CellStatus, **fields: Any) -> None:
        if not job.retry:  # a retry leaves its cell's status, its first run's, as it is
            store.set_cell_status(job.cell, status, **fields)

    budget = spent(store.spend(), job.limits)
    if budget is not None:
        set_status("stopped", reason=budget)
        return CellOutcome(job.cell, "stopped", budget, recorded)
    changed = _changed_since_planned(job)
    if changed is not None:
        set_status("failed", reason=changed)
        return CellOutcome(job.cell, "failed", changed, recorded)
    set_status("running", folder=job.folder)
    try:
        run = prepare(job.request())
    except AlreadyComplete:  # finished, and its results reconciled above
        return _finished(job, store, recorded)
    except (RunSetupError, SpecInvalid) as exc:
        reason = str(exc) if isinstance(exc, RunSetupError) else "\n".join(map(str, exc.errors))
        set_status("failed", reason=reason)
        return CellOutcome(job.cell, "failed", reason, recorded)
    for item in run.finished.values():
        keep(item)
    try:
        try:
            summary = asyncio.run(
                execute(run, on_item=keep, stop=lambda: spent(store.spend(), job.limits))
            )
        finally:  # the run's event loop leaves SIGTERM at its default, which kills at once
            if _in_worker:
                signal.signal(signal.SIGTERM, _stop_job)
    except (KeyboardInterrupt, asyncio.CancelledError):
        _record_head(job, store)
        set_status("stopped", reason="interrupted")
        raise
    _record_head(job, store)
    if summary.complete:
        return _finished(job, store, recorded)
    reason = run.stopped_by or "interrupted"
    set_status("stopped", reason=reason)
    return CellOutcome(job.cell, "stopped", reason, recorded)


def _changed_since_planned(job: CellJob) -> str | None:
    """Why the cell must not run: the experiment's files (or its task's data) changed after
    the experiment was planned, so the cell would run another manifest than the one its
    store was opened for, and the store would mix two. None when unchanged, or when the run
    itself will say what is wrong (a file that no longer loads, a cell no longer there)."""
    from govern.spec.loader import load_spec

    try:
        loaded = load_spec(job.experiment)
        cell = next(c for c in loaded.cells if c.id == job.cell)  # type: ignore[union-attr]
        items = _items_of(
            cell.task,
            loaded,  # type: ignore[arg-type]
            job.settings.data,
            job.settings.download,
        )
    except (SpecInvalid, OSError, ValueError, KeyError, StopIteration, AttributeError):
        return None
    except TaskDataError:
        return None
    stored = job.cell_digest
    digest = _cell_digest(cell, _cell_items(cell, items))
    if stored is None or digest == stored:
        return None
    from govern.governance.guard import file_digests

    try:
        planned = json.loads((job.home / EXPERIMENT_FILE).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        planned = {}
    now = {printable(str(k)): v for k, v in file_digests(loaded.files).items()}
    files = sorted(name for name, sha in now.items() if planned.get(name, sha) != sha)
    what = f" ({', '.join(files)} changed)" if files else " (its task data, or a file it names)"
    return (
        f"the experiment changed while it ran{what}: cell {job.cell} would now run under "
        f"digest {digest}, not {stored} as planned; it was not run. Put the files back as "
        "they were and run the same command again, or start afresh with --force-new"
    )


def _finished(job: CellJob, store: ResultsStore, recorded: int) -> CellOutcome:
    if not job.retry:
        store.set_cell_status(job.cell, "finished", folder=job.folder)
    heads = store.ledger_heads(job.cell)
    if not any(h.get("run") == _head_of(job.folder).get("run") and h.get("closing") for h in heads):
        _record_head(job, store)
    return CellOutcome(job.cell, "finished", None, recorded)


def _head_of(folder: Path) -> dict[str, Any]:
    try:
        return read_head(head_path(folder / "ledger.jsonl"))
    except ProofError:
        return {}


def _record_head(job: CellJob, store: ResultsStore) -> None:
    head = _head_of(job.folder)
    if head:
        store.record_ledger_head(job.cell, {**head, "folder": str(job.folder)})


def _reconcile(job: CellJob, store: ResultsStore) -> int:
    """Record what the cell's finished runs hold and the store lacks (a kill between a
    result's line and its row): the main run first, then each retry in turn, whose results
    replace the failures they ran again."""
    retries = job.home / RETRIES_FOLDER / job.cell
    numbered = sorted(
        (p for p in retries.iterdir() if p.name.isdigit()) if retries.is_dir() else [],
        key=lambda p: int(p.name),
    )
    added = 0
    for index, folder in enumerate([job.home / CELLS_FOLDER / job.cell, *numbered]):
        if not (folder / RESULTS).exists() or not _complete(folder):
            continue  # an unfinished run's results are recorded as it resumes
        try:
            previous = read_run(folder, load_keyring(job.key_file), complete_ok=True)
        except (ResumeError, LedgerKeyError, OSError):
            continue  # the run itself says what is wrong when it is resumed
        record = store.record_item if index == 0 else store.replace_failed
        for item in previous.finished.values():
            added += record(job.cell, job.seed, item)
    return added


# -- the whole experiment ------------------------------------------------------------------


def run_experiment(
    prepared: PreparedExperiment,
    executor: Any,
    on_outcome: Callable[[CellOutcome], None] | None = None,
    report: Callable[[str], None] | None = None,
) -> ExperimentOutcome:
    """Run the planned cells with the executor; stop dispatching once a budget is spent.
    Learning firms the cells need are trained first, side by side (``report`` hears how
    that goes)."""
    ends: dict[str, CellOutcome] = {}
    budget: str | None = None
    with ResultsStore.open(
        prepared.store_path, prepared.loaded.experiment.id, prepared.digest
    ) as store:
        budget = spent(store.spend(), prepared.limits)
        if budget is None and prepared.jobs:
            _pretrain(prepared, report)

            def done(outcome: CellOutcome) -> bool:
                nonlocal budget
                ends[outcome.cell] = outcome
                if on_outcome is not None:
                    on_outcome(outcome)
                if outcome.end == "stopped" and outcome.reason != "interrupted":
                    budget = outcome.reason
                return budget is None

            try:
                executor.run(prepared.jobs, done)
            except BaseException:  # interrupted: no cell of this run is running any more
                for cell in store.cells():
                    if cell.status == "running":
                        store.set_cell_status(cell.id, "stopped", reason="interrupted")
                raise
        spend = store.spend()
        stored = store.count()
        failed_items = store.count_failed()
        if budget is not None:
            for cell in store.cells():
                if cell.status in ("pending", "running"):
                    store.set_cell_status(cell.id, "stopped", reason=budget)
    planned = sum(prepared.planned.values())
    return ExperimentOutcome(ends, spend, stored, planned, failed_items, budget)


def _pretrain(prepared: PreparedExperiment, report: Callable[[str], None] | None) -> None:
    """Train every learner pair the planned Cournot cells will play, one batch per regime:
    thirty pairs side by side take about twice as long as one pair alone, and each cell
    then reads its pair instead of training it in its own worker."""
    cells = {cell.id: cell for cell in prepared.loaded.cells}
    markets = [job for job in prepared.jobs if cells[job.cell].task.name == "cournot"]
    if not markets:
        return
    from govern.run.market import pretrain
    from govern.tasks.cournot.task import CournotTask

    task = CournotTask()
    task.load(prepared.request.data)
    runs = [
        (
            cells[job.cell].manifest,
            job.seed,
            job.items or [item.id for item in task.markets(prepared.planned[job.cell])],
        )
        for job in markets
    ]
    assert task.card is not None
    pretrain(task.card.market, runs, report)


def default_workers() -> int:
    """One worker per core this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


_in_worker = False  # this process is a worker of the process executor
_in_job = False  # a cell is running in this process


def _stop_job(signum: int, frame: object) -> None:
    """SIGTERM in a worker: the parent asks the cell running here to stop. While its run
    executes, the run's own handler stops it and seals its ledger as interrupted; before
    and after, this one ends the job with KeyboardInterrupt. An idle worker waits for the
    pool to let it go: a worker that died abruptly would break the pool, which then sends
    SIGTERM again to every worker, killing those still sealing their ledgers."""
    if _in_job:
        raise KeyboardInterrupt


def worker_setup() -> None:
    """In each worker process: die with the parent (a parent killed with SIGKILL must not
    leave workers writing to the cells it will resume), stop a cell on SIGTERM and leave
    Ctrl-C to the parent (which then stops the workers so), and log as the CLI does."""
    global _in_worker
    _in_worker = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_job)
    if sys.platform == "linux":
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
    from govern.logs import configure_logging

    configure_logging()
