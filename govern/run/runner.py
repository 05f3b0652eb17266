"""Run a manifest on a task: prepare (everything that can fail on bad input fails here,
before any call), then execute items concurrently, writing each result as it finishes.

The summary is written however the run ends; after Ctrl-C or a crash it says
``complete: false`` and every finished item is already in results.jsonl.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from govern import __version__
from govern.engine.context import RunContext, assign_models
from govern.engine.state import initial_state
from govern.governance.controller import Controller
from govern.governance.guard import ManifestChanged, ManifestGuard, file_digests
from govern.ledger.keys import (
    Keyring,
    LedgerKeyError,
    default_key_file,
    init_key_file,
    load_keyring,
)
from govern.ledger.writer import FsyncPolicy, LedgerWriter
from govern.models.router import ModelRouter
from govern.models.sim.params import is_simulated
from govern.run.records import ResultsWriter, failed_record, item_record
from govern.run.summary import Summary, summarise
from govern.spec.checks import load_checked
from govern.spec.digest import semantic_digest
from govern.spec.draw import draw
from govern.spec.loader import LoadedManifest, project_root
from govern.spec.models import Manifest
from govern.tasks.base import Task, TaskData, TaskDataError
from govern.tasks.registry import get_task

if TYPE_CHECKING:  # langgraph takes a second to import: only once the inputs are checked
    from govern.engine.compile import CompiledInstitution

log = structlog.get_logger()


class RunSetupError(Exception):
    """A problem with what was asked for, found before the run starts."""


@dataclass
class RunRequest:
    manifest: Path  # a manifest, or an institution to run with default settings
    task: str | None = None
    limit: int | None = None
    model: str | None = None
    role_models: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    concurrency: int = 8
    out: Path | None = None
    data: Path | None = None
    download: bool = False
    api_base: str | None = None
    key_file: Path | None = None  # default: GOVERN_LEDGER_KEY, then the user's key file
    fsync: FsyncPolicy = "seal"  # when the ledger is forced to disk


@dataclass
class PreparedRun:
    manifest: Manifest
    compiled: CompiledInstitution
    task: Task
    data: TaskData
    context: RunContext
    folder: Path
    simulated: bool
    concurrency: int
    ledger: LedgerWriter
    notices: list[str] = field(default_factory=list)


def prepare(request: RunRequest, router: ModelRouter | None = None) -> PreparedRun:
    loaded = load_checked(request.manifest)
    if isinstance(loaded, LoadedManifest):
        manifest, files = loaded.manifest, loaded.files
    else:  # an institution alone runs under a default manifest
        manifest = Manifest(id=loaded.institution.id, institution=loaded.institution)
        files = [request.manifest.resolve()]
    institution = manifest.institution
    task_name = request.task or (manifest.task.name if manifest.task else None)
    if task_name is None:
        raise RunSetupError("no task: pass --task gsm8k or set task: {name: ...} in the manifest")
    try:
        task = get_task(task_name)
        data = task.load(request.data, allow_download=request.download)
    except (KeyError, TaskDataError) as exc:
        raise RunSetupError(str(exc.args[0])) from None
    limit = request.limit or (manifest.task.limit if manifest.task else None)
    items = data.items[:limit] if limit else data.items
    data = TaskData(items, data.source, data.benchmark, data.notice)
    unknown_roles = set(request.role_models) - {r.id for r in institution.roles}
    if unknown_roles:
        raise RunSetupError(
            f"--role-model names no role of {institution.id}: {', '.join(sorted(unknown_roles))}"
        )
    role_models = assign_models(
        institution,
        request.model or manifest.models.default,
        manifest.models.roles,
        request.role_models,
    )
    router = router or ModelRouter(
        simulator=manifest.simulator,
        api_base=request.api_base or manifest.models.api_base,
        concurrency=request.concurrency,
    )
    problems = router.problems(role_models.values())
    if problems:
        raise RunSetupError("; ".join(problems))
    seed = manifest.seed if request.seed is None else request.seed
    keyring, key_notice = _keyring(request.key_file)
    folder = _new_folder(request, manifest.id, task_name)
    from govern.engine.compile import compile_institution

    compiled = compile_institution(institution)
    simulated = all(is_simulated(m) for m in role_models.values())
    header = {
        "software": f"govern {__version__}",
        "manifest": {
            "id": manifest.id,
            "semantic_sha256": semantic_digest(manifest),
            "files": file_digests(files),
        },
        "institution_sha256": compiled.digest,
        "config": {
            "task": task_name,
            "items": len(items),
            "data_source": data.source,
            "seed": seed,
            "models": role_models,
            "simulated": simulated,
            "concurrency": request.concurrency,
            "budgets": manifest.budgets.model_dump(),
            "governance": manifest.governance is not None,
        },
    }
    ledger = LedgerWriter.create(
        folder / "ledger.jsonl",
        keyring,
        f"{folder.name}-{uuid.uuid4().hex[:8]}",
        header,
        fsync=request.fsync,
    )
    (folder / "ledger.pub").write_text(ledger.public_key + "\n")
    controller = Controller(institution, manifest.governance, ledger, ManifestGuard(files))
    context = RunContext(
        institution,
        task,
        router,
        role_models,
        seed=seed,
        budgets=manifest.budgets,
        golds={i.id: i.gold for i in items},
        controller=controller,
    )
    return PreparedRun(
        manifest,
        compiled,
        task,
        data,
        context,
        folder,
        simulated=simulated,
        concurrency=request.concurrency,
        ledger=ledger,
        notices=[n for n in (data.notice, key_notice) if n],
    )


def _keyring(key_file: Path | None) -> tuple[Keyring, str | None]:
    """The ledger key; on a machine with none yet, a new key file (said aloud, never shown)."""
    try:
        return load_keyring(key_file), None
    except LedgerKeyError as exc:
        default = default_key_file()
        if key_file is not None or default.exists():
            raise RunSetupError(str(exc)) from None
    try:
        ring = init_key_file(default)
    except (LedgerKeyError, OSError) as exc:
        raise RunSetupError(f"no ledger key, and none could be created: {exc}") from None
    return ring, (
        f"created a ledger key at {default} (mode 600); keep it to audit your runs, "
        "or set GOVERN_LEDGER_KEY"
    )


def _new_folder(request: RunRequest, manifest_id: str, task: str) -> Path:
    if request.out is not None:
        folder = request.out
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                raise RunSetupError(
                    f"--out {folder} exists and is not a folder; choose a new --out folder"
                )
            try:
                if any(folder.iterdir()):
                    raise RunSetupError(f"{folder} is not empty; choose a new --out folder")
            except OSError as exc:
                raise RunSetupError(f"cannot read the folder {folder}: {exc.strerror}") from None
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        base = project_root(Path.cwd()) / "runs" / f"{stamp}-{manifest_id}-{task}"
        folder, n = base, 1
        while folder.exists():
            n += 1
            folder = base.with_name(f"{base.name}-{n}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunSetupError(f"cannot create the run folder {folder}: {exc.strerror}") from None
    try:  # an existing folder may be read-only: find out now, not at the ledger's first line
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise RunSetupError(f"cannot write in the run folder {folder}: {exc.strerror}") from None
    return folder


async def execute(
    run: PreparedRun, on_item: Callable[[dict[str, Any]], None] | None = None
) -> Summary:
    """Run every item; the summary is written even when this is cancelled or crashes."""
    _write_inputs(run)
    started = datetime.now(UTC)
    clock = time.perf_counter()
    records: list[dict[str, Any]] = []
    writer = ResultsWriter(run.folder / "results.jsonl")
    in_flight = asyncio.Semaphore(max(1, 2 * run.concurrency))
    complete = False

    async def one(item) -> None:
        async with in_flight:
            record = await _run_item(run, item)
        writer.write(record)
        records.append(record)
        if on_item is not None:
            on_item(record)

    try:
        try:
            async with asyncio.TaskGroup() as group:
                for item in run.data.items:
                    group.create_task(one(item))
        except* ManifestChanged as halted:
            raise halted.exceptions[0] from None
        complete = True
    finally:
        writer.close()
        run.ledger.close()
        summary = _summarise(run, records, complete, started, time.perf_counter() - clock)
        (run.folder / "summary.json").write_text(summary.model_dump_json(indent=2) + "\n")
    return summary


async def _run_item(run: PreparedRun, item) -> dict[str, Any]:
    clock = time.perf_counter()
    config = {"recursion_limit": run.compiled.recursion_limit}
    controller = run.context.controller
    controller.begin_item(item.id)  # refuses to go on if the manifest changed
    try:
        state = await run.compiled.graph.ainvoke(
            initial_state(item.id, item.question), config, context=run.context
        )
    except Exception as exc:  # one item's failure must not end the run
        log.warning("item failed", item=item.id, error=repr(exc))
        controller.end_item(item.id, "error")
        return failed_record(
            item, f"{type(exc).__name__}: {exc}", time.perf_counter() - clock, run.simulated
        )
    controller.end_item(item.id, state.get("outcome"))
    return item_record(run.task, item, state, time.perf_counter() - clock, run.simulated)


def _write_inputs(run: PreparedRun) -> None:
    resolved = {
        "manifest": run.manifest.model_dump(mode="json"),
        "institution_digest": run.compiled.digest,
        "models": run.context.role_models,
        "seed": run.context.seed,
        "task": run.task.name,
        "data_source": run.data.source,
        "items": len(run.data.items),
        "simulated": run.simulated,
    }
    (run.folder / "manifest.json").write_text(json.dumps(resolved, indent=2) + "\n")
    (run.folder / "graph.mmd").write_text(draw(run.manifest.institution, "mermaid"))


def _summarise(
    run: PreparedRun, records: list[dict[str, Any]], complete: bool, started: datetime, wall: float
) -> Summary:
    institution = run.manifest.institution
    return summarise(
        records,
        simulated=run.simulated,
        complete=complete,
        manifest=run.manifest.id,
        institution=institution.id,
        pattern=institution.pattern,
        task=run.task.name,
        data_source=run.data.source,
        benchmark=run.data.benchmark,
        n_planned=len(run.data.items),
        wall_seconds=round(wall, 3),
        models=run.context.role_models,
        seed=run.context.seed,
        concurrency=run.concurrency,
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        govern_version=__version__,
    )
