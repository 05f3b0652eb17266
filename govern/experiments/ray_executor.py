"""Cells as Ray tasks: ``govern run EXPERIMENT.yaml --executor ray [--ray-address ADDR]``.

Each cell job runs the cell as `govern.experiments.runner.run_cell` does, as one Ray task
asking for one CPU: the task writes the cell's run folder itself, by its absolute path, so
the experiment folder must be on a filesystem every Ray node shares, at the same path on
each (as must the experiment's files and the data). The results store is the exception:
SQLite's WAL mode is safe only among processes of one machine, so the store is opened by
one actor on the driver's node (`StoreKeeper`) and the tasks record through it.

At most ``workers`` cells are in flight (``--workers N``; by default as many as the
cluster has CPUs when the experiment starts), so that once a budget is spent no further
cell starts, as with local workers. A task that raises, or whose worker is lost, is that
cell's failure; Ray does not retry it (running the same command again resumes the cell
from its ledger). On Ctrl-C or SIGTERM the cells in flight are cancelled: Ray raises
KeyboardInterrupt in each task, whose run then seals its ledger as interrupted, and the
driver waits for that (up to GRACE_SECONDS) before it leaves.

Without an address, a private local Ray instance is started (``ray.init(address="local")``,
never one that RAY_ADDRESS or a ``ray start`` on this machine points to) and shut down at
the end: no dashboard, no usage statistics, and an authentication token of its own held
in the environment rather than written to ``~/.ray``. Ray is imported here only, and only
when asked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import select
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from govern.experiments.executors import Done, crashed
from govern.experiments.runner import CellJob, CellOutcome, run_cell_into
from govern.ledger.keys import LedgerKeyError, load_keyring
from govern.run.request import RunSetupError

INSTALL_HINT = "--executor ray needs Ray: pip install 'govern[ray]'"
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
GRACE_SECONDS = 30.0  # how long cancelled cells get to seal their ledgers


def import_ray(local: bool) -> ModuleType:
    """Ray, with its environment set before it is first imported (Ray reads it then): no
    usage statistics, and for a local instance started here an authentication token of
    its own, handed to its processes through the environment (Ray would otherwise write
    one to ~/.ray/auth_token), unless the user chose how Ray authenticates. The token is
    set once per process and kept: Ray caches the token it first read."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if local and not any(os.environ.get(name) for name in AUTH_VARIABLES):
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    try:
        import ray
    except ImportError:
        raise RunSetupError(INSTALL_HINT) from None
    return ray


class RayExecutor:
    """Cells as Ray tasks on a cluster (``address``) or a local instance started here."""

    def __init__(self, address: str | None, workers: int | None) -> None:
        self.address = address
        self.workers = workers  # None: as many cells in flight as the cluster has CPUs
        self.ray = import_ray(local=address is None)  # refused here if Ray is missing
        if address is not None:
            _check_reachable(address)

    def run(self, jobs: Sequence[CellJob], done: Done) -> None:
        if not jobs:
            return
        ray = self.ray
        if ray.is_initialized():  # a program that embeds govern and set Ray up itself
            self._run(jobs, done, driver=None)
            return
        self._connect()
        try:
            # the workers of a local instance end the moment this process does
            self._run(jobs, done, driver=os.getpid() if self.address is None else None)
        finally:
            ray.shutdown()  # a local instance ends; from a cluster, this driver leaves

    def _connect(self) -> None:
        ray = self.ray
        options: dict[str, Any] = {
            "logging_level": logging.WARNING,  # no "Started a local Ray instance" chatter
            "log_to_driver": True,  # the cells' own warnings still reach this terminal
        }
        if self.address is None:
            options.update(address="local", num_cpus=self.workers, include_dashboard=False)
        else:
            options.update(address=self.address)
        # ray.init sets a SIGTERM handler of its own in the driver; keep govern's
        previous = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            what = f"join the Ray cluster at {self.address}" if self.address else "start Ray"
            raise RunSetupError(f"cannot {what}: {exc}") from None
        finally:
            with contextlib.suppress(ValueError, TypeError):  # not the main thread
                signal.signal(signal.SIGTERM, previous)

    def _window(self) -> int:
        if self.workers is not None:
            return self.workers
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def _run(self, jobs: Sequence[CellJob], done: Done, driver: int | None) -> None:
        ray = self.ray
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_cell)
        try:
            keys = keys_in_use(jobs[0].key_file)
        except LedgerKeyError as exc:
            raise RunSetupError(str(exc)) from None
        keeper = _start_keeper(ray, jobs[0], driver)
        window = self._window()
        waiting = list(jobs)
        running: dict[Any, CellJob] = {}
        with _signal_kept(signal.SIGTERM) as reraise, _stopped(ray, keeper):
            try:
                while waiting or running:
                    while waiting and len(running) < window:
                        job = waiting.pop(0)
                        running[task.remote(job, keeper, keys, driver)] = job
                    finished, _ = ray.wait(list(running), num_returns=1)
                    for ref in finished:
                        job = running.pop(ref)
                        if not done(self._outcome(ref, job)):
                            waiting.clear()
            except BaseException:
                self._cancel(list(running))
                reraise()  # SIGTERM's own exception, if that is what stopped us
                raise

    def _outcome(self, ref: Any, job: CellJob) -> CellOutcome:
        try:
            outcome: CellOutcome = self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            cause = getattr(error, "cause", None)  # a RayTaskError carries the task's own
            return crashed(job, cause if isinstance(cause, BaseException) else error)
        return outcome

    def _cancel(self, refs: list[Any]) -> None:
        """Interrupt the cells in flight so that each seals its ledger as interrupted; those
        that have not ended within the grace period are killed (their cells resume from
        their last flushed item, as after a crash)."""
        if not refs:
            return
        ray = self.ray
        with contextlib.suppress(Exception):
            for ref in refs:  # not recursive: a store call in flight completes
                ray.cancel(ref, force=False, recursive=False)
            _, late = ray.wait(refs, num_returns=len(refs), timeout=GRACE_SECONDS)
            for ref in late:
                ray.cancel(ref, force=True, recursive=False)


def _check_reachable(address: str) -> None:
    """A HOST:PORT that nothing answers on is refused at once: Ray would wait for it
    without end, saying only that it cannot reach it."""
    if "://" in address or address in ("auto", "local"):
        return  # Ray Client's ray://, or whatever RAY_ADDRESS or `ray start` say: Ray's own
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RunSetupError(
            f"--ray-address {address}: give the cluster's HOST:PORT (its GCS, as `ray start "
            "--head` prints it), auto, or ray://HOST:PORT"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise RunSetupError(f"cannot reach the Ray cluster at {address}: {reason}") from None


@contextlib.contextmanager
def _signal_kept(signum: int) -> Iterator[Callable[[], None]]:
    """Ray's waits turn whatever a signal handler raises into a plain KeyboardInterrupt; so
    note when ``signum`` arrived, and give a function that raises the handler's own
    exception again (the CLI's SIGTERM, exit 143) once the cells are cancelled."""
    handler = signal.getsignal(signum)
    arrived = False

    def noted(number: int, frame: Any) -> None:
        nonlocal arrived
        arrived = True
        handler(number, frame)  # type: ignore[operator]

    def reraise() -> None:
        if arrived:
            handler(signum, None)  # type: ignore[operator]

    if not callable(handler):
        yield lambda: None
        return
    try:
        signal.signal(signum, noted)
    except ValueError:  # not the main thread
        yield lambda: None
        return
    try:
        yield reraise
    finally:
        signal.signal(signum, handler)


def _ray_cell(
    job: CellJob, keeper: Any, keys: tuple[str | None, str | None], driver: int | None
) -> CellOutcome:
    """A Ray task: one cell, in a Ray worker process, set up as govern's own workers are,
    its store calls made through the keeper (`StoreKeeper`), its ledger signed with the
    keys ``govern`` itself uses (``keys``: their ids) or not run at all.

    Logging is configured as the CLI does. The parent-death signal of govern's own workers
    is not used: a Ray worker's parent is the raylet, not the driver, and the worker is
    pooled for other tasks. Instead, on a local instance (``driver``: its process id), a
    watch ends this worker the moment the driver is gone, as the parent-death signal ends
    a local worker: the raylet would end it only seconds later, and a driver killed with
    SIGKILL must not leave cells being written while the next run resumes them. (On a
    cluster, the keeper dies with the driver, and with it every cell's next store call.)
    The signal handlers a run installs are put back as Ray had them."""
    _configure_logging()
    store = _KeptStore(keeper)
    problem = keys_problem(job.key_file, keys)
    if problem is not None:
        store.set_cell_status(job.cell, "failed", reason=problem)
        return CellOutcome(job.cell, "failed", problem)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with _ends_with(driver):
            return run_cell_into(job, store)  # type: ignore[arg-type]
    finally:
        for signum, handler in handlers.items():
            if handler is not None:
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(signum, handler)


# -- the store, kept on the driver's machine -----------------------------------------------


def _store_method(name: str) -> bool:
    """Whether ``name`` is a public method of the store, which a cell's run may call."""
    from govern.experiments.store import ResultsStore

    return not name.startswith("_") and callable(getattr(ResultsStore, name, None))


class StoreKeeper:
    """The experiment's results store, opened once in a Ray actor on the driver's node; the
    cells' tasks record into it through this actor, wherever they run.

    SQLite's WAL mode, which the store uses, is safe only among processes of one machine:
    it shares memory between them, and cannot over a network filesystem. So no task on
    another node opens the store itself; a task's calls go to this actor one at a time, as
    they would wait for one another's write lock, and the store's running totals stay
    exact for every cell's budget check."""

    def __init__(self, path: str, experiment_id: str, digest: str, driver: int | None) -> None:
        from govern.experiments.store import ResultsStore

        self._watch = _ends_with(driver)  # a local instance's keeper ends with its driver
        self._watch.__enter__()
        self.store = ResultsStore.open(path, experiment_id, digest)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not _store_method(name):
            raise AttributeError(f"the results store has no method {name!r}")
        return getattr(self.store, name)(*args, **kwargs)

    def close(self) -> None:
        self.store.close()


class _KeptStore:
    """In a task: the store's methods, each a call to the keeper that waits for its answer."""

    def __init__(self, keeper: Any) -> None:
        self._keeper = keeper

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if not _store_method(name):
            raise AttributeError(name)
        import ray

        def call(*args: Any, **kwargs: Any) -> Any:
            return ray.get(self._keeper.call.remote(name, *args, **kwargs))

        return call


def _start_keeper(ray: Any, job: CellJob, driver: int | None) -> Any:
    """The store keeper, on this (the driver's) node, asking for no CPU."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(num_cpus=0, max_restarts=0, scheduling_strategy=here)(StoreKeeper)
    keeper = actor.remote(str(job.store), job.experiment_id, job.digest, driver)
    try:
        ray.get(keeper.call.remote("spend"))  # opened, or its error raised here
    except ray.exceptions.RayError as error:
        cause = getattr(error, "cause", None) or error
        raise RunSetupError(f"cannot open the results store {job.store} on Ray: {cause}") from None
    return keeper


@contextlib.contextmanager
def _stopped(ray: Any, keeper: Any) -> Iterator[None]:
    """The keeper closes its store (a checkpoint of the WAL) and ends with the experiment."""
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            ray.get(keeper.close.remote(), timeout=GRACE_SECONDS)
        with contextlib.suppress(Exception):
            ray.kill(keeper)


def keys_in_use(key_file: Path | None) -> tuple[str | None, str | None]:
    """The ids of the ledger keys a run here signs with: its HMAC key's id and its seal
    key's public half (neither is secret)."""
    ring = load_keyring(key_file)
    return ring.active, ring.signer_public


def keys_problem(key_file: Path | None, expected: tuple[str | None, str | None]) -> str | None:
    """Why a cell must not run on this node: it would sign its ledger with other keys than
    ``govern`` does (or none, and create some), so that its ledger would not audit."""
    try:
        found: tuple[str | None, str | None] | None = keys_in_use(key_file)
        missing = ""
    except LedgerKeyError as exc:
        found, missing = None, f" ({exc})"
    if found == expected:
        return None
    return (
        f"the Ray node {socket.gethostname()} has other ledger keys than govern{missing}: give "
        "every node the same keys (GOVERN_LEDGER_KEY and GOVERN_SIGNING_KEY in the Ray "
        "workers' environment, or --key-file on the shared filesystem)"
    )


_logging_configured = False


def _configure_logging() -> None:
    global _logging_configured
    if not _logging_configured:
        from govern.logs import configure_logging

        configure_logging()
        _logging_configured = True


@contextlib.contextmanager
def _ends_with(pid: int | None) -> Iterator[None]:
    """While the block runs, end this process at once (as SIGKILL would) if ``pid`` ends."""
    if pid is None:
        yield
        return
    try:
        watched = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)  # the driver is already gone
    except (AttributeError, OSError):  # not Linux 5.3+: look every 100 ms
        watched = None
    stop_read, stop_write = os.pipe()

    def watch() -> None:
        if watched is not None:
            ready, _, _ = select.select([watched, stop_read], [], [])
            if watched in ready:
                os._exit(1)
            return
        while not select.select([stop_read], [], [], 0.1)[0]:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    thread = threading.Thread(target=watch, name="govern-driver-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        os.write(stop_write, b"x")
        thread.join()
        for fd in (stop_read, stop_write, watched):
            if fd is not None:
                os.close(fd)
