"""The ``govern`` command line: parses arguments, calls the package, prints.

Heavy modules are imported inside the command that needs them, so that
``govern --help`` and ``govern validate`` start fast and never import
langgraph or litellm.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from govern import __version__
from govern.spec.errors import SpecInvalid
from govern.text import ERRORS, printable
from govern.trace.cascades import MEASURES

PATTERNS = ("pipeline", "gated_pipeline", "autonomous_cluster", "consensus")

# Exit status, documented in the README's "Errors" section.
EXIT_OK = 0
EXIT_INVALID = 1  # invalid specs; for `govern audit`, a damaged ledger
EXIT_USAGE = 2  # a mistake in the command or in the files and folders it names
EXIT_STOPPED = 3  # an experiment stopped by its budget: raise it and run again to resume
EXIT_INTERNAL = 70  # a bug in govern (EX_SOFTWARE): the message asks for a report
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_TERMINATED = 143  # SIGTERM
EXIT_BROKEN_PIPE = 141  # the reader of standard output went away


class UsageError(Exception):
    """A mistake in how the command was called: exit 2 with the message."""


class ResultsUnusable(Exception):
    """Results that cannot be compared or reported (damaged, hostile, empty): exit 1."""


def _yaml_files(paths: Sequence[str]) -> list[Path]:
    """Files as given, and the YAML files inside any folder given.

    Whatever a name in a folder turns out to be (a FIFO, a device, a folder named
    x.yaml, a dangling link), the loader reports it as that file's error, so one
    bad entry never stops the others from being checked.
    """
    from govern.discovery import yaml_files_in
    from govern.spec.errors import escape_controls

    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        try:
            is_dir = path.is_dir()
        except OSError:  # not ours to look at: the loader says so for this file
            is_dir = False
        if not is_dir:
            files.append(path)
            continue
        try:
            inside = yaml_files_in(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UsageError(f"cannot list the folder {escape_controls(raw)}: {reason}") from None
        if not inside:
            raise UsageError(f"no .yaml or .yml files in the folder {escape_controls(raw)}")
        files.extend(inside)
    return files


def cmd_validate(args: argparse.Namespace) -> int:
    from govern.spec.checks import load_checked
    from govern.spec.errors import display_path

    reports = []
    for path in _yaml_files(args.paths):
        try:
            loaded = load_checked(path)
            kind = type(loaded).__name__.removeprefix("Loaded").lower()
            reports.append({"file": display_path(path), "valid": True, "kind": kind, "errors": []})
        except SpecInvalid as exc:
            errors = exc.errors
            reports.append(
                {
                    "file": display_path(path),
                    "valid": False,
                    "kind": None,
                    "errors": [e.as_dict() for e in errors],
                }
            )
            if not args.json:
                for error in errors:
                    print(error)
    if args.json:
        print(json.dumps({"valid": all(r["valid"] for r in reports), "files": reports}, indent=2))
    else:
        bad = sum(not r["valid"] for r in reports)
        summary = f"{len(reports) - bad} valid, {bad} invalid"
        print(summary, file=sys.stderr)
    return 0 if all(r["valid"] for r in reports) else 1


def _load_one(path: str):  # -> Institution, typed loosely to keep imports lazy
    from govern.spec.checks import checked_institution, load_checked

    return checked_institution(load_checked(Path(path)))


def cmd_graph(args: argparse.Namespace) -> int:
    from govern.spec.draw import draw

    print(draw(_load_one(args.path), args.format), end="")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from govern.spec.fingerprint import fingerprint

    institutions, invalid = [], False
    for path in _yaml_files(args.paths):  # every file is checked, and reported, before any row
        try:
            institutions.append(_load_one(str(path)))
        except SpecInvalid as exc:
            invalid = True
            for error in exc.errors:
                print(error, file=sys.stderr)
    if invalid:
        return EXIT_INVALID
    rows = [
        {"institution": i.id, "pattern": i.pattern, "fingerprint": fingerprint(i).model_dump()}
        for i in institutions
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    headers = (
        "roles",
        "agents",
        "stages",
        "gates",
        "branches",
        "loops",
        "depth",
        "calls min",
        "calls max",
    )  # in Fingerprint field order
    table = Table(title="Structural fingerprints (definitions: README, 'The fingerprint')")
    table.add_column("institution", no_wrap=True)
    table.add_column("pattern", no_wrap=True)
    for header in headers:
        table.add_column(header, justify="right")
    for row in rows:
        values = ["-" if v is None else str(v) for v in row["fingerprint"].values()]
        table.add_row(row["institution"], row["pattern"], *values)
    # Piped output goes to files and logs, where wrapping helps nobody.
    Console(width=None if sys.stdout.isatty() else 140).print(table)
    for path in _yaml_files(args.paths):
        _print_deterrence(path)
    return 0


def _print_deterrence(path: Path) -> None:
    """For a manifest whose governance weighs the Cournot market's signals: whether the
    graph can deter collusion at all, before anyone runs it."""
    from govern.governance.oracle import is_market_regime
    from govern.spec.checks import load_checked
    from govern.spec.loader import LoadedManifest

    loaded = load_checked(path)
    if not isinstance(loaded, LoadedManifest) or not is_market_regime(loaded.manifest.governance):
        return
    from govern.governance.rounds import deterrence_lines
    from govern.tasks.cournot.card import load_card

    governance = loaded.manifest.governance
    assert governance is not None
    print(f"\n{loaded.manifest.id} (market regime):")
    for line in deterrence_lines(governance, load_card().market):
        print(f"  {line}")


def _write_output(path: Path, text: str, *, replace: bool) -> None:
    """Write a file the user named (--out, --write-head): over an existing file only when
    ``replace``, never into a folder, a FIFO or a device (which could block), never half a
    traceback."""
    if path.exists() or path.is_symlink():
        if not replace:
            raise UsageError(f"{path} already exists; choose another --out or remove it")
        if not path.is_file():
            raise UsageError(f"{path} is not a regular file; choose a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w" if replace else "x", encoding="utf-8") as file:
            file.write(printable(text))
    except FileExistsError:
        raise UsageError(f"{path} already exists; choose another --out or remove it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def cmd_new(args: argparse.Namespace) -> int:
    import shlex

    from govern.spec.loader import project_root
    from govern.spec.scaffold import FeatureError, NameRefused, scaffold_institution

    out: Path | None = Path(args.out) if args.out else None
    schema_ref = None
    if out is not None:
        if out.exists() or out.is_symlink():
            raise UsageError(f"{out} already exists; choose another --out or remove it")
        schema = project_root(out.parent.resolve()) / "schemas" / "govern.schema.json"
        if schema.is_file():
            schema_ref = os.path.relpath(schema, out.parent.resolve())
    hint = shlex.quote(printable(out)) if out else "FILE"
    try:
        text = scaffold_institution(
            printable(args.name),
            args.pattern,
            schema_ref=schema_ref,
            hint=hint,
            features=frozenset(args.features),
        )
    except FeatureError as exc:
        raise UsageError(f"--with: {exc}") from None
    except NameRefused as exc:
        raise UsageError(f"NAME: {exc}") from None
    if out is None:
        print(text, end="")
        return 0
    _write_output(out, text, replace=False)
    print(f"wrote {out}; check it with: govern validate {hint}", file=sys.stderr)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from govern.spec.schema import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if args.out:
        _write_output(Path(args.out), text, replace=True)
    else:
        print(text, end="")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from govern.discovery import discover
    from govern.spec.loader import project_root

    found = discover(project_root(Path.cwd()))
    if not found:
        print("no institutions, manifests or tasks found here", file=sys.stderr)
    width = min(max((len(item.path) for item in found), default=0), 48)
    for item in found:
        print(f"{item.kind:<12} {item.path:<{width}}  {item.summary}")
    return 0


def _features(text: str) -> list[str]:
    """``--with lot,office``: known feature names, each once."""
    from govern.spec.scaffold import FEATURES

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FEATURES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"no feature '{', '.join(unknown) or text}'; features: {', '.join(FEATURES)}"
        )
    return names


def _whole_number(text: str, *, least: int, what: str) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (--limit, --concurrency)."""
    return _whole_number(text, least=1, what="a whole number of at least 1")


def non_negative_int(text: str) -> int:
    """argparse type: a whole number of at least 0 (--seed, --prove)."""
    return _whole_number(text, least=0, what="a whole number of at least 0")


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds above 0 and at most a day (--timeout, --deadline)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got '{text}'") from None
    if not 0 < seconds <= 86_400:
        raise argparse.ArgumentTypeError(f"expected seconds above 0 and at most 86400, got {text}")
    return seconds


def dollars(text: str) -> float:
    """argparse type: a positive, finite amount of US dollars (--max-dollars)."""
    try:
        amount = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an amount of dollars, got '{text}'") from None
    if not 0 < amount < float("inf"):
        raise argparse.ArgumentTypeError(f"expected an amount of dollars above 0, got {text}")
    return amount


def api_base(text: str) -> str:
    """argparse type: a server's base URL (--api-base)."""
    from govern.spec.models import server_url

    try:
        return server_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _model(text: str) -> str:
    """A model named on the command line, checked as a spec's model names are."""
    from govern.spec.models import model_name

    try:
        return model_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _role_model(text: str) -> tuple[str, str]:
    role, sep, model = text.partition("=")
    if not sep or not role or not model:
        raise argparse.ArgumentTypeError(f"expected ROLE=MODEL, got '{text}'")
    return role, _model(model)


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from govern.logs import configure_logging
    from govern.run.report import print_summary, progress, report_failures
    from govern.run.request import MAY_CHANGE_ON_RESUME, RunDamaged
    from govern.run.resume import AlreadyComplete
    from govern.run.runner import RunRequest, RunSetupError, execute, prepare

    configure_logging()
    experiment_flags = [
        flag
        for flag, given in (
            ("--workers", args.workers is not None),
            ("--executor", args.executor is not None),
            ("--ray-address", args.ray_address is not None),
            ("--retry-failed", args.retry_failed),
            ("--force-new", args.force_new),
            ("--max-calls", args.max_calls is not None),
            ("--max-tokens", args.max_tokens is not None),
            ("--max-dollars", args.max_dollars is not None),
        )
        if given
    ]
    if args.manifest is not None or args.resume is not None:
        from govern.experiments.runner import EXPERIMENT_FILE, STORE_FILE, is_experiment

        experiment = args.manifest is not None and is_experiment(Path(args.manifest))
        if experiment and args.resume is None:
            return run_experiment_command(args)
        resume = Path(args.resume) if args.resume is not None else None
        if experiment or (
            resume and any((resume / f).is_file() for f in (EXPERIMENT_FILE, STORE_FILE))
        ):
            raise UsageError(
                "--resume DIR continues a single run; an experiment resumes when the command "
                "that started it is run again: govern run EXPERIMENT.yaml --out DIR"
            )
    if experiment_flags:
        raise UsageError(
            f"{', '.join(experiment_flags)}: only for an experiment (kind: experiment)"
        )
    if (args.manifest is None) == (args.resume is None):
        raise UsageError("give a MANIFEST to run, or --resume DIR to continue a run (not both)")
    fixed = ("task", "limit", "model", "role_model", "seed", "out", "data", "download", "api_base")
    if args.resume and any(getattr(args, name) not in (None, False, []) for name in fixed):
        *others, last = (f"--{name.replace('_', '-')}" for name in MAY_CHANGE_ON_RESUME)
        allowed = f"{', '.join(others)} and {last}"
        raise UsageError(
            f"--resume continues a run with the settings it started with; only {allowed} may "
            "be given with it"
        )
    request = RunRequest(
        manifest=Path(args.manifest or "."),
        task=args.task,
        limit=args.limit,
        model=args.model,
        role_models=dict(args.role_model),
        seed=args.seed,
        concurrency=args.concurrency,
        out=Path(args.out) if args.out else None,
        data=Path(args.data) if args.data else None,
        download=args.download,
        api_base=args.api_base,
        key_file=Path(args.key_file) if args.key_file else None,
        fsync=args.fsync,
        resume=Path(args.resume) if args.resume else None,
        timeout=args.timeout,
        deadline=args.deadline,
    )
    try:
        run = prepare(request)
    except RunDamaged as exc:  # a failed verification, not a misuse
        print(f"govern: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except RunSetupError as exc:
        raise UsageError(str(exc)) from None
    except AlreadyComplete as exc:
        print(f"govern: {exc}", file=sys.stderr)
        return 0
    for notice in run.notices:
        print(f"notice: {notice}", file=sys.stderr)
    run.report = lambda line: print(f"govern: {line}", file=sys.stderr, flush=True)
    pending = len(run.data.items) - len(run.finished)
    try:
        with progress(pending, f"{run.manifest.id} on {run.task.name}") as advance:
            summary = asyncio.run(execute(run, on_item=advance))
    except (KeyboardInterrupt, asyncio.CancelledError):
        signal_name = run.stopped_by or "SIGINT"
        print(
            f"govern: interrupted by {signal_name}; finished items, an incomplete summary and a "
            f"ledger sealed as interrupted are in {run.folder}; continue with: "
            f"govern run --resume {run.folder}",
            file=sys.stderr,
        )
        return EXIT_TERMINATED if signal_name == "SIGTERM" else EXIT_INTERRUPTED
    print_summary(summary, run.folder, run.data.notice)
    return report_failures(summary)  # 1 when every item failed


def run_experiment_command(args: argparse.Namespace) -> int:
    """`govern run EXPERIMENT.yaml`: every cell, in worker processes, into one store."""
    import asyncio

    from govern.experiments.progress import experiment_progress, print_outcome
    from govern.experiments.runner import ExperimentRequest, prepare_experiment, run_experiment
    from govern.experiments.spec import Limits
    from govern.run.request import RunSetupError

    single = ("task", "limit", "model", "role_model", "seed")
    given = [f"--{n.replace('_', '-')}" for n in single if getattr(args, n) not in (None, [])]
    if given:
        raise UsageError(
            f"{', '.join(given)}: an experiment sets these in its file (tasks, models, seeds); "
            "edit the experiment, or run one of its manifests"
        )
    if args.ray_address is not None and args.executor != "ray":
        raise UsageError("--ray-address is for --executor ray")
    request = ExperimentRequest(
        manifest=Path(args.manifest),
        out=Path(args.out) if args.out else None,
        workers=args.workers,
        executor=args.executor or "process",
        ray_address=args.ray_address,
        concurrency=args.concurrency,
        retry_failed=args.retry_failed,
        force_new=args.force_new,
        data=Path(args.data) if args.data else None,
        download=args.download,
        api_base=args.api_base,
        key_file=Path(args.key_file) if args.key_file else None,
        fsync=args.fsync,
        timeout=args.timeout,
        deadline=args.deadline,
        limits=Limits(calls=args.max_calls, tokens=args.max_tokens, dollars=args.max_dollars),
        command=" ".join(["govern", *map(printable, sys.argv[1:])]),
    )
    try:
        executor = _executor(request)  # a missing Ray is refused before any folder is made
        prepared = prepare_experiment(request)
    except RunSetupError as exc:
        raise UsageError(str(exc)) from None
    try:
        for notice in prepared.notices:
            print(f"notice: {notice}", file=sys.stderr)
        with _sigterm_interrupts(), experiment_progress(prepared) as on_outcome:
            outcome = run_experiment(
                prepared,
                executor,
                on_outcome,
                report=lambda line: print(f"govern: {line}", file=sys.stderr, flush=True),
            )
    except RunSetupError as exc:
        raise UsageError(str(exc)) from None
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        # a cell run in this process (--workers 1) ends on SIGTERM with its run cancelled
        terminated = isinstance(exc, _Terminated | asyncio.CancelledError)
        print(
            f"govern: interrupted by {'SIGTERM' if terminated else 'SIGINT'}; every finished "
            f"item is in {prepared.store_path}, and each cell's run folder is sealed; run the "
            "same command again to resume",
            file=sys.stderr,
        )
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    finally:
        prepared.release()
    print_outcome(prepared, outcome)
    if outcome.budget is not None:
        return EXIT_STOPPED
    return EXIT_INVALID if outcome.failed else EXIT_OK


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C is, so that an experiment stops the same way: its workers
    asked to stop, their ledgers sealed as interrupted, exit 143."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    import signal

    def terminated(signum: int, frame: object) -> None:
        raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, terminated)
    except ValueError:  # not in the main thread: SIGTERM is left as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _executor(request):  # -> Executor; typed loosely to keep imports lazy
    from govern.experiments.runner import default_workers

    if request.executor == "ray":  # default: as many cells at once as the cluster has CPUs
        from govern.experiments.ray_executor import RayExecutor

        return RayExecutor(request.ray_address, request.workers)
    workers = request.workers or default_workers()
    from govern.experiments.executors import InlineExecutor, ProcessExecutor

    return InlineExecutor() if workers == 1 else ProcessExecutor(workers)


def cmd_audit(args: argparse.Namespace) -> int:
    from govern.experiments.audit import is_experiment_folder
    from govern.ledger.audit import AuditUsageError, audit

    if is_experiment_folder(Path(args.target)):
        return _audit_experiment(args)
    try:
        result = audit(
            Path(args.target),
            key_file=Path(args.key_file) if args.key_file else None,
            public_keys=tuple(Path(p) for p in args.public_key),
            trusted_file=Path(args.trusted_keys) if args.trusted_keys else None,
            explain=args.explain,
            prove_seq=args.prove,
            since=Path(args.since) if args.since else None,
        )
    except AuditUsageError as exc:
        raise UsageError(str(exc)) from None
    head = json.dumps(result.head, indent=2, sort_keys=True) + "\n" if result.head else None
    if args.write_head and head is None:
        raise UsageError("the ledger has no intact seal to write out as a head")
    if args.write_head and args.write_head != "-":
        _write_output(Path(args.write_head), head, replace=True)
    report = json.dumps(result.report, indent=2) if args.json else "\n".join(result.text)
    if args.write_head == "-":  # the head is the output; the verdict goes to stderr
        print(head, end="")
        print(report, file=sys.stderr)
    else:
        print(report)
    return 0 if result.intact else 1


def _audit_experiment(args: argparse.Namespace) -> int:
    from govern.experiments.audit import ExperimentDamaged, audit_experiment
    from govern.ledger.audit import AuditUsageError

    only_runs = [
        flag
        for flag, given in (
            ("--explain", args.explain),
            ("--prove", args.prove is not None),
            ("--since", args.since is not None),
            ("--write-head", args.write_head is not None),
        )
        if given
    ]
    if only_runs:
        raise UsageError(
            f"{', '.join(only_runs)}: for one run's ledger; give a cell's folder "
            f"({args.target}/cells/CELL) instead of the experiment"
        )
    try:
        result = audit_experiment(
            Path(args.target),
            key_file=Path(args.key_file) if args.key_file else None,
            public_keys=tuple(Path(p) for p in args.public_key),
            trusted_file=Path(args.trusted_keys) if args.trusted_keys else None,
        )
    except AuditUsageError as exc:
        raise UsageError(str(exc)) from None
    except ExperimentDamaged as exc:
        print(f"NOT VERIFIED: {exc}")
        return EXIT_INVALID
    print(json.dumps(result.as_dict(), indent=2) if args.json else "\n".join(result.text()))
    return 0 if result.intact else 1


def cmd_keys(args: argparse.Namespace) -> int:
    from govern.ledger.keys import (
        LedgerKeyError,
        default_key_file,
        init_key_file,
        load_keyring,
        rotate_key_file,
        trust_public_key,
    )

    path = Path(args.file) if args.file else default_key_file()
    if (args.action == "trust") != (args.public is not None):
        raise UsageError("`govern keys trust PUBLIC_KEY` takes a key; the other actions take none")
    try:
        if args.action == "init":
            ring = init_key_file(path)
        elif args.action == "rotate":
            ring = rotate_key_file(path)
        elif args.action == "trust":
            ring = trust_public_key(path, _public_key_text(args.public), args.name or "")
        else:  # public: the key that signs this user's runs, from wherever runs take it
            ring = load_keyring(Path(args.file) if args.file else None)
        public = ring.active_signer.public
    except LedgerKeyError as exc:
        raise UsageError(str(exc)) from None
    if args.action == "public":
        print(public)
    else:
        print(
            f"{args.action}: {ring.source} (mode 600), active key {ring.active}; "
            f"seal public key {public}",
            file=sys.stderr,
        )
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    import sqlite3

    from govern.models.cache import ENV, ResponseCache, default_cache_path

    path = default_cache_path()
    if path is None:
        print(f"the response cache is off ({ENV}=off)", file=sys.stderr)
        return 0
    if not path.exists():
        print(f"{path}: no responses kept yet")
        return 0
    try:
        cache = ResponseCache(path)
    except (OSError, sqlite3.DatabaseError) as exc:
        raise UsageError(str(exc)) from None
    try:
        if args.action == "clear":
            print(f"{path}: {cache.clear()} responses forgotten")
        else:
            kept = cache.stats()
            print(f"{path}: {sum(kept.values())} responses kept")
            for model, count in sorted(kept.items()):
                print(f"  {count:>8}  {model}")
    finally:
        cache.close()
    return 0


def _load_results(paths: Sequence[str]):  # -> ResultSet, typed loosely to keep imports lazy
    from govern.experiments.results import ResultsError, load_results

    try:
        return load_results([Path(p) for p in paths])
    except ResultsError as exc:
        if exc.usage:
            raise UsageError(str(exc)) from None
        raise ResultsUnusable(str(exc)) from None


def _compared(results, measure: str):  # -> Comparison
    from govern.experiments.compare import compare
    from govern.experiments.results import ResultsError

    try:
        return compare(results, measure)
    except ResultsError as exc:
        raise ResultsUnusable(str(exc)) from None


def cmd_compare(args: argparse.Namespace) -> int:
    from govern.experiments import markets as market_tables
    from govern.experiments.compare import render_json, render_markdown, render_text

    if args.json and args.markdown:
        raise UsageError("give --json or --markdown, not both")
    results = _load_results(args.sources)
    markets = market_tables.analyse_markets(results)  # judged by collusion, not accuracy
    others = market_tables.without_markets(results)
    if markets is not None:
        if args.json:
            print(markets.model_dump_json(indent=2))
        else:
            shown = market_tables.render_markdown if args.markdown else market_tables.render_text
            print(shown(markets), end="")
        if not any(cell.items for cell in others.cells):
            return EXIT_OK
    comparison = _compared(others, args.measure)
    render = render_json if args.json else render_markdown if args.markdown else render_text
    print(render(comparison), end="")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from govern.experiments.markets import analyse_markets, without_markets
    from govern.experiments.markets import render_text as market_text
    from govern.experiments.report import write_report
    from govern.experiments.results import ResultsError, folder_kind
    from govern.trace.figures import report_section

    if args.out:
        out = Path(args.out)
    elif len(args.sources) == 1 and _quiet_kind(folder_kind, args.sources[0]) == "experiment":
        out = Path(args.sources[0]) / "report"
    else:
        raise UsageError("give --out DIR: the report goes into an experiment's own folder only")
    results = _load_results(args.sources)
    markets = analyse_markets(results)  # cells that played markets: no accuracy to compare
    others = without_markets(results)
    compared = markets is None or any(cell.items for cell in others.cells)
    comparison = _compared(others, args.measure) if compared else None
    try:
        traced = report_section(Path(args.sources[0])) if len(args.sources) == 1 else None
        written = write_report(results, comparison, out, markets, traced)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    if markets is not None:
        print(market_text(markets), end="")
    elif results.label:
        print(results.label, file=sys.stderr)
    print(f"wrote {written.folder / 'report.html'} ({len(written.files)} files)", file=sys.stderr)
    return EXIT_OK


def _quiet_kind(kind, path: str) -> str | None:
    from govern.experiments.results import ResultsError

    try:
        return kind(Path(path))
    except ResultsError as exc:
        raise UsageError(str(exc)) from None


def cmd_maker_plan(args: argparse.Namespace) -> int:
    from govern.maker.maths import plan

    p = args.p if args.p is not None else 1 - args.error
    try:
        result = plan(
            p,
            args.steps,
            args.target,
            args.m,
            valid_rate=args.valid_rate,
            price_per_sample=args.price_per_sample,
        )
    except ValueError as exc:
        given = f"--error {args.error} means p = {p!r}; " if args.p is None else ""
        raise UsageError(f"{given}{exc}") from None
    if args.json:
        print(result.model_dump_json(indent=2))
        return EXIT_OK
    rows = [
        ("voted subtasks (s/m)", f"{result.subtasks:,.10g}"),
        ("k_min", str(result.k)),
        ("per-step success at k_min", f"{result.step_success:.12g}"),
        ("full-task success at k_min", f"{result.full_task_success:.6f}"),
        ("expected valid samples per step", _amount(result.expected_valid_samples_per_step, 4)),
        ("expected samples per step", _amount(result.expected_samples_per_step, 4)),
        ("expected samples in total", _amount(result.expected_samples, 0)),
    ]
    if result.expected_cost is not None:
        rows.append(("expected cost", _amount(result.expected_cost, 2)))
    print(
        f"MAKER plan: p = {p!r}, s = {args.steps:,}, t = {args.target:g}, m = {args.m}, "
        f"v = {args.valid_rate:g}"
    )
    for name, value in rows:
        print(f"  {name:<33} {value}")
    return EXIT_OK


def _amount(value: float, decimals: int) -> str:
    """A figure with thousands separators, or in scientific notation once it is too large
    to read digit by digit."""
    return f"{value:,.{decimals}f}" if value < 1e15 else f"{value:.4e}"


def cmd_dti_estimate(args: argparse.Namespace) -> int:
    from govern.trace.dti import EstimationError, TraceError, TraceUnreadable, estimate, read_trace

    paths = [Path(raw) for raw in args.traces]
    try:
        result = estimate(read_trace(path) for path in paths)
    except TraceUnreadable as exc:  # a file named by mistake, as `govern run --data` treats it
        raise UsageError(str(exc)) from None
    except (TraceError, EstimationError) as exc:
        print(f"govern: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    shown = ", ".join(printable(path) for path in paths)
    source = f"fitted from {len(paths)} trace{'' if len(paths) == 1 else 's'}: {shown}"
    if args.json:
        print(source, file=sys.stderr)
        print(result.model_dump_json(indent=2))
        return EXIT_OK
    print(f"DTI estimate, {source}")
    rows = [
        ("a", f"{result.a:.6g}"),
        ("beta", f"{result.beta:.6g}"),
        ("delta", f"{result.delta:.6g}"),
        ("R^2 of log M on log t", f"{result.r_squared:.4f}"),
        ("(t, M) points fitted", f"{result.points:,}"),
        ("merges skipped at t = 0", f"{result.skipped:,}"),
        ("roots", f"{result.roots:,}"),
    ]
    for name, value in rows:
        print(f"  {name:<25} {value}")
    if result.delta_clamped:
        print(
            f"  delta clamped to 0: the median deficit at a root's end was "
            f"{result.median_deficit:.6g} (merges ran ahead of the pressure)"
        )
    return EXIT_OK


MAX_REPLICATES = 100_000  # CSN's 2,500 give p to 0.01; a hundred thousand take an hour here


def bootstrap_replicates(text: str) -> int:
    """argparse type: a number of bootstrap replicates, 0 to MAX_REPLICATES."""
    value = non_negative_int(text)
    if value > MAX_REPLICATES:
        raise argparse.ArgumentTypeError(f"at most {MAX_REPLICATES:,} replicates, not {value:,}")
    return value


def cmd_trace_analyze(args: argparse.Namespace) -> int:
    from govern.trace.analyze import TraceError, analyze, render

    target = Path(args.target)
    if not target.is_dir():
        raise UsageError(f"{printable(target)} is not a run or experiment folder")
    if args.plot is not None and Path(args.plot).exists() and not Path(args.plot).is_dir():
        raise UsageError(f"--plot {printable(args.plot)} is not a folder")
    try:
        analysis = analyze(target, args.measure, bootstrap=args.bootstrap)
    except TraceError as exc:
        print(f"govern: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(analysis.model_dump_json(indent=2) if args.json else render(analysis))
    if args.plot is not None:
        from govern.trace.figures import report_section

        folder = Path(args.plot)
        section = report_section(target, analysis)
        charts = section[1] if section is not None else []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for chart in charts:
                for suffix, data in ((".svg", chart.svg), (".png", chart.png)):
                    (folder / f"{chart.name}{suffix}").write_bytes(data)
        except OSError as exc:
            raise UsageError(f"cannot write the figures in {printable(folder)}: {exc}") from None
        names = ", ".join(f"{chart.name}.svg/.png" for chart in charts)
        print(f"figures in {printable(folder)}: {names}", file=sys.stderr)
    return EXIT_OK


def cmd_trace_society(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from govern.spec.models import DTIParams
    from govern.trace.society import SocietyParams, write_society

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {printable(out)} is a file; choose a new folder")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {printable(out)} exists and is not empty; choose a new folder")
    try:
        sizes = [int(n) for n in args.agents.split(",")]
    except ValueError:
        raise UsageError(f"--agents {args.agents!r}: give sizes as N,N,... e.g. 8,64,512") from None
    if len(set(sizes)) != len(sizes):
        raise UsageError(f"--agents {args.agents!r}: a size is given twice")
    try:
        dti = DTIParams() if args.dti else None
        societies = [
            SocietyParams(
                agents=n,
                rounds=args.rounds,
                topology=args.topology,
                beta=args.beta,
                dti=dti,
                seed=args.seed,
            )
            for n in sizes
        ]
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UsageError(f"--{error['loc'][0]}: {error['msg']}") from None
    for params in societies:
        print(f"govern: simulating {params.agents} agents x {params.rounds} rounds ...",
              file=sys.stderr, flush=True)  # fmt: skip
        cell = write_society(out, params)
        print(f"govern: {cell.name}: written", file=sys.stderr)
    print(f"SIMULATED societies in {printable(out)}: govern trace analyze {printable(out)}")
    return EXIT_OK


def _unit_interval(text: str) -> float:
    """argparse type: a probability, a number from 0 to 1 (--p, --error, --target,
    --valid-rate); the stricter bounds each has are the maths' to check and explain."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got '{text}'") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text}")
    return value


def _price(text: str) -> float:
    """argparse type: a finite price of at least 0 (--price-per-sample)."""
    try:
        amount = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a price, got '{text}'") from None
    if not 0 <= amount < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a price of at least 0, got {text}")
    return amount


def _public_key_text(value: str) -> str:
    """A public key given as hex, or as a file holding it."""
    from govern.files import read_regular

    path = Path(value)
    if len(value) != 64 and path.exists():
        try:
            return read_regular(path, 4096)[:4096].decode("ascii", errors="replace")
        except OSError as exc:
            raise UsageError(f"cannot read {value}: {exc.strerror}") from None
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govern",
        description="Compile governance graphs (institutions as YAML) into multi-agent "
        "topologies, run them on tasks, and audit what happened.",
    )
    parser.add_argument("--version", action="version", version=f"govern {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str):
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(handler=handler)
        return p

    p = command("validate", cmd_validate, "Check institution and manifest files (or folders).")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="machine-readable report")

    p = command("graph", cmd_graph, "Draw an institution's topology.")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")

    p = command("inspect", cmd_inspect, "Show the structural fingerprints of institutions.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    from govern.spec.scaffold import FEATURE_HELP

    p = command("new", cmd_new, "Scaffold a new spec file that validates as written.")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "features for --with (each added with comments saying what it does):\n" + "".join(
        f"  {name:<12} {text}\n" for name, text in FEATURE_HELP.items()
    )
    p.add_argument("what", choices=("institution",))
    p.add_argument("name", metavar="NAME", help="the institution's name, e.g. 'Roman Senate'")
    p.add_argument("--pattern", choices=PATTERNS, required=True)
    p.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    p.add_argument(
        "--with",
        dest="features",
        metavar="FEATURE[,FEATURE]",
        type=_features,
        action="extend",
        default=[],
        help="add the second edition's constructs to the template (repeatable; listed below); "
        "a feature the pattern cannot hold is refused, saying which pattern can",
    )

    p = command("schema", cmd_schema, "Print the JSON Schema of institutions and manifests.")
    p.add_argument("--out", metavar="FILE", help="write here instead of standard output")

    command("list", cmd_list, "List the institutions, manifests and tasks of this project.")

    p = command("audit", cmd_audit, "Verify a run's ledger and files; explain it; prove entries.")
    p.add_argument("target", metavar="RUN_DIR_OR_LEDGER")
    p.add_argument(
        "--key-file",
        metavar="F",
        help="HMAC key file (default: GOVERN_LEDGER_KEY, then ~/.config/govern/ledger-keys.json)",
    )
    p.add_argument(
        "--public-key",
        metavar="F",
        action="append",
        default=[],
        help="check the signed seals with this trusted seal key, kept outside the run folder "
        "(repeatable; without --key-file, no HMAC key is used)",
    )
    p.add_argument(
        "--trusted-keys", metavar="F", help="a file of trusted seal keys, one 'HEX [name]' a line"
    )
    p.add_argument(
        "--since",
        metavar="HEAD_FILE",
        help="prove the ledger is an append-only extension of this earlier signed head",
    )
    p.add_argument(
        "--write-head",
        metavar="F",
        help="write the latest verified signed head to F ('-': standard output), for witnessing",
    )
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--explain", action="store_true", help="a timeline per agent")
    p.add_argument(
        "--prove", type=non_negative_int, metavar="SEQ", help="an inclusion proof for entry SEQ"
    )

    p = command("keys", cmd_keys, "Create, rotate, show or trust ledger keys (never the secret).")
    p.add_argument("action", choices=("init", "rotate", "public", "trust"))
    p.add_argument(
        "public",
        nargs="?",
        metavar="PUBLIC_KEY",
        help="with trust: another writer's seal public key (hex, or a file holding it)",
    )
    p.add_argument("--name", help="with trust: a name for the key")
    p.add_argument(
        "--file",
        metavar="F",
        help="key file (default: GOVERN_KEY_FILE, then ~/.config/govern/ledger-keys.json)",
    )

    p = command("compare", cmd_compare, "Rank the configurations of experiments or runs.")
    p.add_argument("sources", nargs="+", metavar="EXPERIMENT_OR_RUN")
    p.add_argument(
        "--measure",
        choices=("strict", "flexible"),
        default="strict",
        help="the accuracy that ranks and is tested (default strict)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--markdown", action="store_true", help="the table as Markdown")

    p = command("report", cmd_report, "Write an experiment's self-contained HTML report.")
    p.add_argument("sources", nargs="+", metavar="EXPERIMENT")
    p.add_argument("--out", metavar="DIR", help="report folder (default EXPERIMENT/report)")
    p.add_argument(
        "--measure",
        choices=("strict", "flexible"),
        default="strict",
        help="the accuracy that ranks and is tested (default strict)",
    )

    p = command("cache", cmd_cache, "Show or clear the real models' response cache.")
    p.add_argument("action", choices=("stats", "clear"))

    p = sub.add_parser(
        "maker",
        help="MAKER's scaling laws: the voting margin and cost a long task needs.",
        description="MAKER (arXiv 2511.09030): maximal decomposition, first-to-ahead-by-k "
        "voting and red flags.",
    )
    maker = p.add_subparsers(dest="maker_command", metavar="ACTION", required=True)
    text = (
        "The least voting margin k reaching a target full-task success, and what it costs "
        "(MAKER's equations; wrong samples assumed to agree, the worst case)."
    )
    p = maker.add_parser("plan", help=text, description=text)
    p.set_defaults(handler=cmd_maker_plan)
    success = p.add_mutually_exclusive_group(required=True)
    success.add_argument(
        "--p",
        type=_unit_interval,
        metavar="P",
        help="per-step success probability of one valid sample (above 0.5)",
    )
    success.add_argument(
        "--error",
        type=_unit_interval,
        metavar="E",
        help="per-step error rate, 1 - P (below 0.5), as the paper's tables give it",
    )
    p.add_argument(
        "--steps", type=positive_int, required=True, metavar="S", help="steps in the task"
    )
    p.add_argument(
        "--target",
        type=_unit_interval,
        required=True,
        metavar="T",
        help="full-task success wanted, above 0 and below 1, e.g. 0.95",
    )
    p.add_argument(
        "--m", type=positive_int, default=1, metavar="M", help="steps per voted subtask (1)"
    )
    p.add_argument(
        "--price-per-sample",
        type=_price,
        metavar="C",
        help="the price of one raw sample, for the expected cost",
    )
    p.add_argument(
        "--valid-rate",
        type=_unit_interval,
        default=1.0,
        metavar="V",
        help="share of samples that pass the red flags (1); the rest are redrawn",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser(
        "dti",
        help="Deficit-Triggered Integration: when parallel work must be merged.",
        description="Deficit-Triggered Integration (arXiv 2604.02674): integrate a root's "
        "branches when a * t ** beta - M exceeds delta (t coordination events, M merges).",
    )
    dti = p.add_subparsers(dest="dti_command", metavar="ACTION", required=True)
    text = (
        "Fit a, beta and delta to baseline traces: JSONL, one event a line, "
        '{"root": "...", "kind": "coordination" | "merge" | "end"}.'
    )
    p = dti.add_parser("estimate", help=text, description=text)
    p.set_defaults(handler=cmd_dti_estimate)
    p.add_argument("traces", nargs="+", metavar="TRACE.jsonl")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser(
        "trace",
        help="The event tracer: cascades, power-law fits and elites of runs.",
        description="Every agent turn of a run is an event (events.jsonl); cascades are built "
        "from the events each builds on (arXiv 2604.02674).",
    )
    trace = p.add_subparsers(dest="trace_command", metavar="ACTION", required=True)
    text = (
        "Cascades of a run's (or an experiment's) events: the power-law fit of one measure "
        "(Clauset-Shalizi-Newman: discrete MLE, x_min by KS, likelihood ratios) and how "
        "concentrated the attention is."
    )
    p = trace.add_parser("analyze", help=text, description=text)
    p.set_defaults(handler=cmd_trace_analyze)
    p.add_argument("target", metavar="RUN_OR_EXPERIMENT")
    p.add_argument(
        "--plot",
        metavar="DIR",
        help="write the measure's CCDF with the fitted line there (SVG and PNG)",
    )
    p.add_argument(
        "--measure",
        choices=MEASURES,
        default="tce",
        help="the cascade measure to fit (tce: total cognitive effort, in events)",
    )
    p.add_argument(
        "--bootstrap",
        type=bootstrap_replicates,
        default=0,
        metavar="N",
        help=f"replicates of the goodness-of-fit bootstrap (0: none; at most {MAX_REPLICATES:,})",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    text = (
        "Simulate offline agent societies of several sizes in an institution's topology "
        "(a seeded model, not LLMs) and write their events for `govern trace analyze`."
    )
    p = trace.add_parser("society", help=text, description=text)
    p.set_defaults(handler=cmd_trace_society)
    p.add_argument("--out", required=True, metavar="DIR", help="a new folder for the societies")
    p.add_argument(
        "--agents", default="8,16,32,64,128,256,512", metavar="N,N,...", help="society sizes"
    )
    p.add_argument("--rounds", type=positive_int, default=10, metavar="R")
    p.add_argument(
        "--topology",
        choices=("consensus", "autonomous_cluster", "pipeline", "gated_pipeline"),
        default="consensus",
    )
    p.add_argument("--beta", type=float, default=1.0, help="preferential attachment (1)")
    p.add_argument("--dti", action="store_true", help="run the DTI monitor live (1, 0.6, 2)")
    p.add_argument("--seed", type=non_negative_int, default=0)

    p = command(
        "run",
        cmd_run,
        "Run a manifest on a task, or every cell of an experiment (offline on sim/ models by "
        "default).",
    )
    p.add_argument("manifest", metavar="MANIFEST", nargs="?")
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the unfinished run in DIR with the settings it started with",
    )
    p.add_argument("--task", help="task name (default: the manifest's), e.g. gsm8k")
    p.add_argument(
        "--limit", type=positive_int, metavar="N", help="run only the first N items (N >= 1)"
    )
    p.add_argument("--model", metavar="M", type=_model, help="model for every role without its own")
    p.add_argument(
        "--role-model",
        action="append",
        type=_role_model,
        default=[],
        metavar="ROLE=M",
        help="model for one role (repeatable)",
    )
    p.add_argument(
        "--seed", type=non_negative_int, metavar="S", help="seed, >= 0 (default: the manifest's)"
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        metavar="C",
        help="model calls and items in flight at once (default 8; a resumed run keeps its own)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="output folder (default runs/<time>-<manifest>-<task>)"
    )
    p.add_argument("--data", metavar="PATH", help="task data file (GSM8K: test.jsonl)")
    p.add_argument(
        "--download",
        action="store_true",
        help="download the official data when it is not found locally",
    )
    p.add_argument(
        "--api-base", type=api_base, metavar="URL", help="base URL of an OpenAI-compatible server"
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="S",
        help="seconds one attempt of a real model's call may take (default: the manifest's, 60)",
    )
    p.add_argument(
        "--deadline",
        type=positive_seconds,
        metavar="S",
        help="seconds a whole call may take, retries included (default: the manifest's, 180)",
    )
    p.add_argument(
        "--key-file",
        metavar="F",
        help="ledger key file (default: GOVERN_LEDGER_KEY, then ~/.config/govern/ledger-keys.json)",
    )
    p.add_argument(
        "--fsync",
        choices=("never", "seal", "always"),
        default="seal",
        help="when the ledger is forced to disk: never, at every seal (default), every entry",
    )
    grid = p.add_argument_group("experiments (kind: experiment)")
    grid.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="cells run at once, each in a worker process (default: one per core)",
    )
    grid.add_argument(
        "--executor",
        choices=("process", "ray"),
        help="where cells run: local worker processes (default) or a Ray cluster",
    )
    grid.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --executor ray: the cluster to join, HOST:PORT or auto (RAY_ADDRESS, or the "
        "one `ray start` began here); default: a local Ray instance of its own",
    )
    grid.add_argument(
        "--retry-failed", action="store_true", help="run the recorded failed items again"
    )
    grid.add_argument(
        "--force-new",
        action="store_true",
        help="start afresh although the experiment changed (the old results are kept aside)",
    )
    grid.add_argument(
        "--max-calls", type=positive_int, metavar="N", help="the experiment's budget of calls"
    )
    grid.add_argument(
        "--max-tokens", type=positive_int, metavar="N", help="the experiment's budget of tokens"
    )
    grid.add_argument(
        "--max-dollars",
        type=dollars,
        metavar="USD",
        help="the experiment's budget in US dollars (prices litellm knows, or a prices file)",
    )
    return parser


def _tolerant_streams() -> None:
    """Never fail on printing: a non-UTF-8 file name (surrogate escapes in ``sys.argv``)
    or a character the terminal cannot show is printed backslash-escaped, as
    :func:`govern.text.printable` escapes text written into files."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors=ERRORS)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 success, 1 invalid specs (or a damaged ledger), 2 a mistake in the
    command or its inputs, 70 a bug in govern, 130 interrupted, 141 stdout closed early."""
    _tolerant_streams()
    try:
        args = build_parser().parse_args(argv)
        status = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except UsageError as exc:
        print(f"govern: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SpecInvalid as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return EXIT_INVALID
    except ResultsUnusable as exc:
        print(f"govern: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("govern: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`govern list | head -1`): stop quietly, as other tools do.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.filename is None:
            return _internal_error(exc)
        # A file or folder the user named that cannot be used; the commands say so
        # more precisely where they can, this is the net under all of them.
        reason = exc.strerror or exc
        print(f"govern: error: cannot use {exc.filename}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # the last line of defence: a bug, reported as one
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    print(
        f"govern: internal error (a bug in govern, please report it): {type(exc).__name__}: {exc}",
        file=sys.stderr,
    )
    traceback.print_exception(exc, file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
