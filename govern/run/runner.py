"""Run a manifest on a task: prepare (everything that can fail on bad input fails here,
before any call), then execute items concurrently, writing each result as it finishes.

The summary is written however the run ends; after Ctrl-C or a crash it says
``complete: false`` and every finished item is already in results.jsonl.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from govern import __version__
from govern.engine.context import RunContext, assign_models
from govern.engine.state import initial_state
from govern.experiments.spec import Cell, LoadedExperiment, TaskSample
from govern.files import write_atomic
from govern.governance.controller import Controller
from govern.governance.guard import ManifestChanged, ManifestGuard, file_digests
from govern.governance.oracle import is_market_regime
from govern.governance.steps import StepRecordError, VisitKey
from govern.ledger.binding import EVENTS, RESULTS, folder_digests
from govern.ledger.keys import (
    ENV_KEY,
    ENV_SIGNING_KEY,
    Keyring,
    LedgerKeyError,
    add_seal_key,
    default_key_file,
    init_key_file,
    load_keyring,
)
from govern.ledger.writer import LedgerBusy, LedgerWriter
from govern.maker.decompose import Resumed, resume_from
from govern.models.cache import ResponseCache, default_cache_path
from govern.models.router import ModelRouter
from govern.models.sim.params import is_firm_model, is_simulated
from govern.run import gc_policy
from govern.run.records import ResultsWriter, failed_record, item_record
from govern.run.request import (
    DEFAULT_CONCURRENCY,
    RunDamaged,
    RunRequest,
    RunSetupError,
    changes_since,
    refusal,
    same_run_or_refuse,
)
from govern.run.resume import (
    REQUEST_FILE,
    AlreadyComplete,
    LedgerDamaged,
    PreviousRun,
    ResumeError,
    is_run_folder,
    read_run,
    rewrite_results,
)
from govern.run.summary import Summary, Tally
from govern.spec.checks import load_checked
from govern.spec.digest import semantic_digest
from govern.spec.draw import draw
from govern.spec.errors import SpecInvalid
from govern.spec.loader import LoadedManifest, project_root
from govern.spec.models import DecomposeStage, Institution, Manifest
from govern.tasks.base import Task, TaskData, TaskDataError, TaskItem
from govern.tasks.cournot.task import CournotTask
from govern.tasks.hanoi.task import DEFAULT_DISKS, HanoiTask
from govern.tasks.registry import get_task
from govern.text import printable
from govern.trace.events import events_of

if TYPE_CHECKING:  # langgraph takes a second to import: only once the inputs are checked
    from govern.engine.compile import CompiledInstitution

log = structlog.get_logger()


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
    request: RunRequest
    notices: list[str] = field(default_factory=list)
    finished: dict[str, dict[str, Any]] = field(default_factory=dict)  # resumed: done before
    stopped_by: str | None = None  # the signal (or spent budget) that interrupted the run
    report: Callable[[str], None] | None = None  # progress of long work (training), for a console


def prepare(request: RunRequest, router: ModelRouter | None = None) -> PreparedRun:
    """Check everything, then open the run's ledger: a new run, or the unfinished one in
    ``request.resume`` (or in an ``--out`` folder that holds one)."""
    request, started = _settled(request)
    resume = request.resume
    loaded = load_checked(request.manifest)
    sample: TaskSample | None = None
    if isinstance(loaded, LoadedExperiment):
        cell = _cell_of(loaded, request)
        loaded, sample = cell.loaded, cell.task.sample
    elif request.cell is not None:
        raise RunSetupError(f"{printable(request.manifest)} is not an experiment: it has no cells")
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
    if is_market_regime(manifest.governance) and not isinstance(task, CournotTask):
        raise RunSetupError(
            f"{manifest.id}'s governance weighs the Cournot market's signals: it governs "
            f"task cournot, not {task_name}"
        )
    limit = request.limit or (manifest.task.limit if manifest.task else None)
    if isinstance(task, CournotTask) and limit:
        data = TaskData(task.markets(limit), data.source, data.benchmark, data.notice)
    if isinstance(task, HanoiTask):
        disks = (manifest.task.disks if manifest.task else None) or DEFAULT_DISKS
        data = TaskData(task.towers(disks), data.source, data.benchmark, data.notice)
    _check_decomposition(institution, task)
    items = select_items(data.items, limit=limit, sample=sample, only=request.items)
    data = TaskData(items, data.source, data.benchmark, data.notice)
    unknown_roles = set(request.role_models) - {r.id for r in institution.roles}
    if unknown_roles:
        raise RunSetupError(
            f"--role-model names no role of {institution.id}: {', '.join(sorted(unknown_roles))}"
        )
    offices = sorted(r.id for r in institution.roles if r.office and r.id in request.role_models)
    if offices:
        raise RunSetupError(
            f"--role-model names the office {', '.join(offices)}, whose holders speak on the "
            "models of their own seats: give the model of the roles it is filled from"
        )
    assigned = assign_models(
        institution,
        request.model or manifest.models.default,
        manifest.models.roles,
        request.role_models,
        manifest.models.seats,
    )
    role_models, seat_models, used = assigned.roles, assigned.seats, assigned.used
    router = router or ModelRouter(
        simulator=manifest.simulator,
        api_base=request.api_base or manifest.models.api_base,
        endpoints=manifest.models.endpoints,
        timeout=request.timeout or manifest.models.timeout,
        deadline=request.deadline or manifest.models.deadline,
        concurrency=request.concurrency,
        cache=_response_cache(used),
        prices=manifest.models.prices,
    )
    if isinstance(loaded, LoadedManifest):
        _check_model_settings(loaded, used)
    seats = {
        f"{role.id}#{n}": seat_models.get(f"{role.id}#{n}") or role_models[role.id]
        for role in institution.roles
        if role.office is None
        for n in range(1, role.seats + 1)
    }
    from govern.run.market import firm_models_problems

    firms = task.card.market.firms if isinstance(task, CournotTask) and task.card else 0
    channel = manifest.market is not None and manifest.market.channel
    problems = firm_models_problems(seats, task_name, firms, channel) + router.problems(
        {m for m in used if not is_firm_model(m)}
    )
    if problems:
        raise RunSetupError("; ".join(problems))
    seed = manifest.seed if request.seed is None else request.seed
    keyring, key_notice = ledger_keyring(request.key_file)
    folder = resume or _new_folder(request, manifest.id, task_name)  # before the slow import
    from govern.engine.compile import compile_institution

    compiled = compile_institution(institution)
    simulated = all(is_simulated(m) or is_firm_model(m) for m in used)
    header = {
        "software": f"govern {__version__}",
        "manifest": {
            "id": manifest.id,
            "semantic_sha256": semantic_digest(manifest),
            "files": {printable(name): digest for name, digest in file_digests(files).items()},
        },
        "institution_sha256": compiled.digest,
        "config": {
            "task": task_name,
            "items": len(items),
            "items_sha256": items_digest(items),
            "data_source": data.source,
            "seed": seed,
            "models": role_models,
            **({"seat_models": seat_models} if seat_models else {}),
            "simulated": simulated,
            "api_base": request.api_base or manifest.models.api_base,
            "endpoints": {
                model: endpoint.model_dump(exclude_none=True)
                for model, endpoint in manifest.models.endpoints.items()
            },
            "system_prompt": manifest.models.system_prompt,
            "parsing": manifest.parsing.model_dump(),
            "budgets": manifest.budgets.model_dump(),
            "sampling": manifest.sampling.model_dump(exclude_defaults=True),
            "prices": {m: p.model_dump() for m, p in manifest.models.prices.items()},
            "governance": manifest.governance is not None,
        },
    }
    resumed: dict[VisitKey, Resumed] = {}
    if resume is None:
        ledger, previous = _create_ledger(folder, keyring, header, request), None
    else:
        replayer = partial(_replay_visits, task=task, institution=institution, folder=folder)
        ledger, previous, resumed = _reopen_ledger(
            folder, keyring, header, request, started, replayer
        )
        _rebuild_events(folder, previous, institution)
        if started is not None and previous.header is not None:
            request = started  # the same run goes on, recorded as it was asked for
    controller = Controller(
        institution, manifest.governance, ledger, ManifestGuard(files), seed=seed
    )
    if previous is not None and previous.snapshot is not None:
        controller.restore(previous.snapshot)
    context = RunContext(
        institution,
        task,
        router,
        role_models,
        seed=seed,
        budgets=manifest.budgets,
        golds={i.id: i.gold for i in items},
        controller=controller,
        sampling=manifest.sampling,
        system_prompt=manifest.models.system_prompt,
        parsing=manifest.parsing,
        seat_models=seat_models,
        resumed_visits=resumed,
    )
    notices = [n for n in (data.notice, key_notice) if n]
    if previous is not None:
        notices.append(
            f"resuming the run in {folder} ({previous.ended_as}): {len(previous.finished)} of "
            f"{len(items)} items were finished; the rest run now"
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
        request=request,
        notices=notices,
        finished=previous.finished if previous else {},
    )


def _check_decomposition(institution: Institution, task: Task) -> None:
    """A decompose stage takes its task's own steps (hanoi), or, with a planner, splits an
    item of a task that has none (gsm8k) into branches; a task of steps needs such a stage."""
    kind = getattr(task, "decomposition", None)
    stages = [s for s in institution.stages if isinstance(s, DecomposeStage)]
    for stage in stages:
        if stage.planner is None and kind != "steps":
            raise RunSetupError(
                f"{institution.id}'s stage {stage.id} decomposes its task into voted steps, "
                f"which task {task.name} has none of: run it on task hanoi, or give the stage "
                "a planner (and an integrator) to split each item into sub-questions"
            )
        if stage.planner is not None and kind != "branches":
            raise RunSetupError(
                f"{institution.id}'s stage {stage.id} has a planner split each item into "
                f"sub-questions, which task {task.name} does not take: "
                + (
                    "its steps are its own (leave out planner and integrator)"
                    if kind == "steps"
                    else "run it on gsm8k"
                )
            )
    if kind == "steps" and not stages:
        raise RunSetupError(
            f"task {task.name} is taken one voted step at a time: {institution.id} needs a "
            "stage of kind decompose (see manifests/maker_hanoi.yaml)"
        )


def _replay_visits(
    previous: PreviousRun, *, task: Task, institution: Institution, folder: Path
) -> dict[VisitKey, Resumed]:
    """Where each unfinished decompose stage visit of a killed run stood, replayed from its
    ledger with the Controller's checks; RunDamaged when its records do not stand up. A
    planner's branches are few and start again."""
    found: dict[VisitKey, Resumed] = {}
    for (item, stage_id, visit), lines in previous.steps.items():
        stage = next((s for s in institution.stages if s.id == stage_id), None)
        if not isinstance(stage, DecomposeStage) or stage.planner is not None:
            continue
        work, scorer = task.work(item), task.scorer()  # type: ignore[attr-defined]
        try:
            found[item, stage_id, visit] = resume_from(work, scorer, lines, stage.voting.k)
        except StepRecordError as exc:
            raise RunDamaged(
                f"cannot resume {folder}: the ledger's steps of {item} (stage {stage_id}, "
                f"visit {visit}) do not stand up: {exc}; the run is left as it was"
            ) from None
    return found


def _cell_of(loaded: LoadedExperiment, request: RunRequest) -> Cell:
    """The experiment's cell that the request names (experiments run cell by cell)."""
    if request.cell is None:
        raise RunSetupError(
            f"{printable(request.manifest)} is an experiment ({len(loaded.cells)} cells): "
            "run it with `govern run` on the experiment file itself"
        )
    cell = next((c for c in loaded.cells if c.id == request.cell), None)
    if cell is None:
        raise RunSetupError(
            f"{printable(request.manifest)} has no cell {printable(request.cell)!r}: it changed "
            "since the experiment started"
        )
    return cell


def select_items(
    items: list[TaskItem],
    *,
    limit: int | None,
    sample: TaskSample | None = None,
    only: tuple[str, ...] | None = None,
) -> list[TaskItem]:
    """The items a run takes: a seeded sample or the first ``limit``, and (retries) only
    the ids given."""
    if sample is not None:
        items = [items[i] for i in sample.indices(len(items))]
    elif limit:
        items = items[:limit]
    if only is not None:
        wanted = set(only)
        items = [item for item in items if item.id in wanted]
    return items


def _response_cache(models: Iterable[str]) -> ResponseCache | None:
    """The response cache, for a run with a real model (unless GOVERN_CACHE=off); built-in
    firms call no model, so a market of them never opens it."""
    offline = all(is_simulated(m) or is_firm_model(m) for m in models)
    path = None if offline else default_cache_path()
    if path is None:
        return None
    try:
        return ResponseCache(path)
    except (OSError, sqlite3.DatabaseError) as exc:
        raise RunSetupError(str(exc)) from None


def _check_model_settings(loaded: LoadedManifest, used: set[str]) -> None:
    """Settings by model name must name a model the run uses (a typo would apply to nothing);
    checked here, not by ``govern validate``, as --model and --role-model choose the models."""
    choice = loaded.manifest.models
    by_model = {
        "system_prompt": choice.system_prompt,
        "endpoints": choice.endpoints,
        "prices": choice.prices,
    }
    errors = [
        loaded.source.error(
            ("models", key, model),
            f"models.{key} names '{model}', which no role uses in this run "
            f"(models: {', '.join(sorted(used))})",
        )
        for key, settings in by_model.items()
        for model in settings
        if model not in used
    ]
    if errors:
        raise SpecInvalid(errors)


def _settled(request: RunRequest) -> tuple[RunRequest, RunRequest | None]:
    """The request to carry out: a resumed run's own, and a concurrency in any case. With
    `run MANIFEST --out DIR` on DIR's run, the request as asked (compared with the run's
    once resolved, in `_reopen_ledger`) and, second, the request that run started with."""
    resume, started = request.resume, None
    if resume is None and request.out is not None and is_run_folder(request.out):
        resume = request.out
    if resume is not None:
        try:
            resumed = request.resuming(resume)
        except ResumeError as exc:
            raise RunSetupError(str(exc)) from None
        if request.resume is None:  # `run MANIFEST --out DIR` again: the same run, or refuse
            same_run_or_refuse(request, resumed, resume)
            request, started = replace(request, resume=resume), resumed
        else:
            request = resumed
        if request.concurrency is None:
            request = replace(request, concurrency=resumed.concurrency)
    if request.concurrency is None:
        request = replace(request, concurrency=DEFAULT_CONCURRENCY)
    if request.concurrency < 1:
        raise RunSetupError("concurrency must be at least 1")
    if started is not None:
        started = replace(started, concurrency=request.concurrency)
    return request, started


def items_digest(items: list[TaskItem]) -> str:
    """Ties the ledger to the exact items: a resumed run must have the same ones."""
    text = json.dumps([[i.id, i.question, i.gold] for i in items], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _create_ledger(
    folder: Path, keyring: Keyring, header: dict[str, Any], request: RunRequest
) -> LedgerWriter:
    run_id = f"{printable(folder.name)}-{uuid.uuid4().hex[:8]}"
    _write_request(folder, run_id, request)
    try:
        return LedgerWriter.create(
            folder / "ledger.jsonl", keyring, run_id, header, fsync=request.fsync
        )
    except LedgerKeyError as exc:
        raise RunSetupError(str(exc)) from None


def _write_request(folder: Path, run_id: str, request: RunRequest) -> None:
    """manifest.json first holds the request, so a run killed at once can still resume;
    execute() completes it with the resolved manifest."""
    text = json.dumps({"run": run_id, "request": request.recorded()}, indent=2) + "\n"
    write_atomic(folder / REQUEST_FILE, text)


def _reopen_ledger(
    folder: Path,
    keyring: Keyring,
    header: dict[str, Any],
    request: RunRequest,
    started: RunRequest | None,
    replay_visits: Callable[[PreviousRun], dict[VisitKey, Resumed]],
) -> tuple[LedgerWriter, PreviousRun, dict[VisitKey, Resumed]]:
    """The ledger of the run in ``folder``, to go on with, when ``header`` (this session's)
    differs from its own in nothing that changes a result; ``started``: the request that
    run started with, when this one was asked anew (`run MANIFEST --out DIR`)."""
    try:
        previous = read_run(folder, keyring, complete_ok=True)
    except LedgerDamaged as exc:
        raise RunDamaged(str(exc)) from None
    except ResumeError as exc:
        raise RunSetupError(str(exc)) from None
    if previous.header is None:  # killed before the ledger's first entry: start it afresh
        (folder / "ledger.jsonl").unlink(missing_ok=True)
        ledger = _create_ledger(folder, keyring, header, request)
        rewrite_results(previous)  # nothing was recorded, so no result is kept
        return ledger, previous, {}
    changes = changes_since(header, previous.header)
    if changes:
        raise RunSetupError(
            refusal(folder, changes, complete=previous.complete, asked_anew=started is not None)
        )
    if previous.complete:
        raise AlreadyComplete(folder)
    resumed = replay_visits(previous)  # refused here, before anything is written
    try:  # the lock first: results are rewritten only by the one process that holds it
        ledger = LedgerWriter.reopen(folder / "ledger.jsonl", keyring, fsync=request.fsync)
    except LedgerBusy as exc:
        raise RunSetupError(f"{exc}: is the run still going?") from None
    except (LedgerKeyError, ValueError) as exc:
        raise RunSetupError(f"cannot resume {folder}: {exc}") from None
    rewrite_results(previous)
    ledger.append(
        "resume",
        "govern",
        {
            "previous": previous.ended_as,
            "finished": len(previous.finished),
            "dropped_results": previous.dropped,
            "concurrency": request.concurrency,
        },
    )
    return ledger, previous, resumed


def ledger_keyring(key_file: Path | None) -> tuple[Keyring, str | None]:
    """The ledger keys; on a machine with none at all yet, a new key file (said aloud, never
    shown). A key that is given but unusable is an error, never silently replaced."""
    default = default_key_file()
    try:
        ring, notice = load_keyring(key_file), None
    except LedgerKeyError as exc:
        given = key_file is not None or ENV_KEY in os.environ or ENV_SIGNING_KEY in os.environ
        if given or default.exists():
            raise RunSetupError(str(exc)) from None
        try:
            ring = init_key_file(default)
        except (LedgerKeyError, OSError) as exc:
            raise RunSetupError(f"no ledger key, and none could be created: {exc}") from None
        notice = (
            f"created ledger keys at {default} (mode 600): an HMAC key and a separate seal "
            "key; keep the file to audit your runs, and give others `govern keys public`"
        )
    if ring.signer_public is None and ring.source == str(default) and ring.active is not None:
        try:  # a key file from an earlier govern: give it the seal key it lacks, aloud
            ring = add_seal_key(default)
        except (LedgerKeyError, OSError) as exc:
            problem = f"{default} has no seal key, and none could be added: {exc}"
            raise RunSetupError(problem) from None
        notice = (
            f"added a seal-signing key to {default}, separate from its HMAC key; give others "
            "`govern keys public` to check your runs' seals"
        )
    try:
        ring.require_writer()
    except LedgerKeyError as exc:
        raise RunSetupError(str(exc)) from None
    return ring, notice


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
    run: PreparedRun,
    on_item: Callable[[dict[str, Any]], None] | None = None,
    stop: Callable[[], str | None] | None = None,
) -> Summary:
    """Run every unfinished item. However this ends, the summary is written, the folder's
    files are bound into the ledger and a closing seal says why it ended: complete,
    interrupted (Ctrl-C, SIGTERM, or ``stop``), halted (the manifest changed) or crashed.

    ``stop`` is asked before each item starts; when it gives a reason (an experiment's
    budget is spent), no further item starts, those in flight finish, and the run ends
    interrupted, to be resumed later."""
    _write_inputs(run)
    run.context.report = run.report
    started = datetime.now(UTC)
    clock = time.perf_counter()
    tally = Tally()  # the summary's figures: no record is kept once it is written
    for record in run.finished.values():
        tally.add(record)
    writer = ResultsWriter(run.folder / RESULTS)
    events = ResultsWriter(run.folder / EVENTS)  # the tracer's, an item's events at its end
    run.ledger.hold()  # entries are written at each item's end (see _run_item), not one by one
    in_flight = asyncio.Semaphore(run.concurrency)  # --concurrency 1: one item at a time
    reason = "crashed"

    async def one(item: TaskItem) -> None:
        try:  # the slot was taken for it before it started
            if run.stopped_by is None and stop is not None:
                run.stopped_by = stop()
            if run.stopped_by is not None:
                return
            record = await _run_item(run, item, writer, events)
        finally:
            in_flight.release()
        tally.add(record)
        if on_item is not None:
            on_item(record)

    loop, main = asyncio.get_running_loop(), asyncio.current_task()

    def terminate() -> None:
        run.stopped_by = "SIGTERM"
        main.cancel()

    with suppress(NotImplementedError, RuntimeError, ValueError):  # not in the main thread
        loop.add_signal_handler(signal.SIGTERM, terminate)
    gc_policy.hold()  # fewer garbage collections while items are in flight
    try:
        try:
            async with asyncio.TaskGroup() as group:
                for item in run.data.items:
                    if item.id not in run.finished:
                        await in_flight.acquire()  # a task per item in flight, not per item
                        group.create_task(one(item))
        except* ManifestChanged as halted:
            reason = "halted"
            raise halted.exceptions[0] from None
        reason = "complete" if run.stopped_by is None else "interrupted"
    except (asyncio.CancelledError, KeyboardInterrupt):
        reason = "interrupted"
        raise
    finally:
        gc_policy.release()
        with suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGTERM)
        writer.close()
        events.close()
        summary = _summarise(run, tally, reason == "complete", started, time.perf_counter() - clock)
        write_atomic(run.folder / "summary.json", summary.model_dump_json(indent=2) + "\n")
        run.ledger.append("files", "govern", {"files": folder_digests(run.folder)})
        run.ledger.close(reason)
    return summary


async def _run_item(
    run: PreparedRun, item: TaskItem, writer: ResultsWriter, events: ResultsWriter
) -> dict[str, Any]:
    """Run one item; its result line is written, then its end entry records the line's
    digest, so the ledger vouches only for results that are on disk."""
    clock = time.perf_counter()
    config = {"recursion_limit": run.compiled.recursion_limit}
    controller = run.context.controller
    controller.begin_item(item.id)  # refuses to go on if the manifest changed
    try:
        if isinstance(run.task, CournotTask):
            from govern.run.market import play_market

            record = await play_market(run, item)
            events.write_all(item_events_of(run, record))
            controller.end_item(item.id, record["outcome"], writer.write(record))
            run.ledger.flush()
            return record
        state = await run.compiled.graph.ainvoke(
            initial_state(item.id, item.question), config, context=run.context
        )
    except Exception as exc:  # one item's failure must not end the run
        log.warning("item failed", item=item.id, error=repr(exc))
        outcome = "error"
        record = failed_record(
            item, f"{type(exc).__name__}: {exc}", time.perf_counter() - clock, run.simulated
        )
    else:
        outcome = state.get("outcome")
        record = item_record(run.task, item, state, time.perf_counter() - clock, run.simulated)
    events.write_all(item_events_of(run, record))
    controller.end_item(item.id, outcome, writer.write(record))
    run.ledger.flush()  # the end entry, and every entry before it, on disk before going on
    return record


def item_events_of(run: PreparedRun, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The tracer's events of one finished item (``trace/events.py``), as JSON objects."""
    sanctions = run.context.controller.sanctions_of(record["id"])
    return events_of(run.manifest.institution, run.ledger.run, record, sanctions)


def _rebuild_events(folder: Path, previous: PreviousRun, institution: Institution) -> None:
    """The events of the finished items, made again from what the ledger vouches for (their
    result lines, and the sanctions it recorded): an events file edited or lost while the
    run was stopped is replaced, never carried on."""
    run = previous.run_id
    lines = []
    for record in previous.finished.values():
        sanctions = previous.sanctions.get(record["id"], [])
        for event in events_of(institution, run, record, sanctions):
            lines.append(json.dumps(event, ensure_ascii=False).encode() + b"\n")
    write_atomic(folder / EVENTS, b"".join(lines), fsync=True)


def _write_inputs(run: PreparedRun) -> None:
    resolved = {
        "run": run.ledger.run,
        "request": run.request.recorded(),
        "manifest": run.manifest.model_dump(mode="json"),
        "institution_digest": run.compiled.digest,
        "models": run.context.models,
        "seed": run.context.seed,
        "task": run.task.name,
        "data_source": run.data.source,
        "items": len(run.data.items),
        "simulated": run.simulated,
    }
    write_atomic(run.folder / REQUEST_FILE, json.dumps(resolved, indent=2) + "\n")
    write_atomic(run.folder / "graph.mmd", draw(run.manifest.institution, "mermaid"))


def _summarise(
    run: PreparedRun, tally: Tally, complete: bool, started: datetime, wall: float
) -> Summary:
    institution = run.manifest.institution
    return tally.summary(
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
        models=run.context.models,
        seed=run.context.seed,
        concurrency=run.concurrency,
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        govern_version=__version__,
    )
