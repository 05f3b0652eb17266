"""`govern run EXPERIMENT.yaml` as a user runs it, and as a careless or hostile one does.

The acceptance tests of issue 9 are here: killed part-way (SIGKILL, SIGTERM, Ctrl-C) and
run again, the store holds every (cell, item, seed) once with the numbers of a run never
interrupted; a budget stops the experiment and a raised one resumes it; a second run of a
real model is answered from the response cache without a call; a rate-limited server is
waited for as it asks. Then recorded failures run again with --retry-failed, a changed
manifest is refused unless --force-new, and input that makes no sense is refused plainly:
exit 1 or 2 with one line saying what to do, never a traceback (exit 70).

Experiments run in subprocesses (`govern_process`) wherever processes matter (signals,
worker processes, the response cache's environment); elsewhere in this process (``cli``),
with one worker, for speed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from govern.experiments.store import ResultsStore
from tests.conftest import ROOT, TEST_KEYS, govern_process, user_environment, write
from tests.fault_server import FaultServer

SAMPLE = ROOT / "tasks" / "gsm8k_sample.jsonl"
DATA = ("--data", str(SAMPLE))

# 2 institutions x 2 models x 2 seeds x 15 items: 8 cells, 120 items, ~700 calls
GRID = """\
kind: experiment
id: grid
institutions:
  - ../institutions/bare.yaml
  - ../institutions/tang.yaml
models: [sim/weak, sim/strong]
tasks:
  - {name: gsm8k, limit: 15}
seeds: [0, 1]
"""
GRID_ITEMS = 120

# One institution, one model, two seeds, three items: a grid that runs in a second
SMALL = """\
kind: experiment
id: small
institutions: [../institutions/bare.yaml]
models: [sim/weak]
tasks:
  - {name: gsm8k, limit: 3}
seeds: [0, 1]
"""

# The numbers of an item that depend on the run alone: everything but its latency
NOT_COMPARED = ("latency",)


# -- helpers -------------------------------------------------------------------------------


def project(root: Path, text: str = GRID, name: str = "grid.yaml") -> Path:
    """A project folder holding the bare and Tang institutions and the experiment ``text``."""
    write(root, "pyproject.toml", "[project]\nname = 'x'\n")
    (root / "institutions").mkdir(exist_ok=True)
    for institution in ("bare.yaml", "tang.yaml"):
        shutil.copy(ROOT / "institutions" / institution, root / "institutions" / institution)
    return write(root / "manifests", name, text)


def environment(**extra: str) -> dict[str, str]:
    """A fresh user's environment with the test keys and no response cache."""
    return user_environment(**{**TEST_KEYS, "GOVERN_CACHE": "off", **extra})


def run(experiment: Path, out: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`govern run EXPERIMENT --data SAMPLE --out OUT ARGS` in a subprocess."""
    return govern_process(
        "run", str(experiment), *DATA, "--out", str(out), *args,
        env=environment(**env), cwd=experiment.parent, timeout=180,
    )  # fmt: skip


def start(
    experiment: Path, out: Path, *args: str, group: bool = False, **env: str
) -> subprocess.Popen[str]:
    """The same, started in the background (with ``group``, as the leader of a process group
    of its own, as a shell runs a command); its output goes to OUT.log."""
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "govern.cli", "run", str(experiment), *DATA, "--out", str(out),
         *args],
        cwd=experiment.parent, env=environment(**env), stdout=log, stderr=subprocess.STDOUT,
        text=True, start_new_session=group,
    )  # fmt: skip


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What the command printed, on one line (rich wraps at 80 columns off a terminal)."""
    return " ".join((result.stdout + result.stderr).split())


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 70 and "Traceback" not in result.stderr, result.stderr


def stored_count(out: Path) -> int:
    """Items in the store of a running experiment, read without ever creating the file."""
    path = out / "results.sqlite"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute("SELECT count(*) FROM items").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


class Store:
    """What an experiment's store holds once no process is running it."""

    def __init__(self, out: Path) -> None:
        db = sqlite3.connect(out / "results.sqlite")
        try:
            rows = db.execute("SELECT cell, item, seed, outcome, record FROM items").fetchall()
            self.cells = dict(db.execute("SELECT cell, status FROM cells").fetchall())
            self.reasons = dict(db.execute("SELECT cell, reason FROM cells").fetchall())
            self.calls, self.tokens, self.cost, self.unknown_cost = db.execute(
                "SELECT calls, tokens, cost, unknown_cost FROM totals"
            ).fetchone()
        finally:
            db.close()
        self.rows = len(rows)
        self.keys = {(c, i, s) for c, i, s, _, _ in rows}
        self.outcomes = {(c, i, s): o for c, i, s, o, _ in rows}
        self.numbers = {
            (c, i, s): {k: v for k, v in json.loads(r).items() if k not in NOT_COMPARED}
            for c, i, s, _, r in rows
        }

    def of(self, cells: set[str]) -> dict[tuple[str, str, int], dict[str, Any]]:
        return {key: value for key, value in self.numbers.items() if key[0] in cells}


def same_results(store: Store, reference: Store) -> None:
    """Every (cell, item, seed) once, every cell finished, the numbers of the reference."""
    assert store.rows == len(store.keys), "a (cell, item, seed) is stored twice"
    assert set(store.cells.values()) == {"finished"}, store.cells
    assert store.keys == set(reference.of(set(store.cells)))
    differ = [k for k in store.keys if store.numbers[k] != reference.numbers[k]]
    assert not differ, f"{len(differ)} items differ, e.g. {differ[0]}"


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (its workers and their helpers), from /proc."""
    found: list[int] = []
    stack = [pid]
    while stack:
        for children in Path(f"/proc/{stack.pop()}/task").glob("*/children"):
            try:
                kids = [int(k) for k in children.read_text().split()]
            except OSError:
                kids = []
            found += kids
            stack += kids
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie no one reaped (an orphan's parent here may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert process.poll() is None, f"the run ended ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within 120 s"
        time.sleep(0.01)


def ledger_ends(out: Path) -> dict[str, str | None]:
    """Each cell run folder's last ledger entry: the seal's reason, or None if unsealed."""
    ends = {}
    for ledger in sorted(out.glob("cells/*/ledger.jsonl")):
        last = json.loads(ledger.read_text().splitlines()[-1])
        ends[ledger.parent.name] = last["body"].get("reason") if last["kind"] == "seal" else None
    return ends


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store]:
    """The grid run once, never interrupted, in one process: the numbers to compare with."""
    root = tmp_path_factory.mktemp("reference")
    experiment = project(root)
    result = run(experiment, root / "out", "--workers", "1")
    assert result.returncode == 0, said(result)
    store = Store(root / "out")
    assert store.rows == GRID_ITEMS and set(store.cells.values()) == {"finished"}
    return experiment, store


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    return project(tmp_path)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return project(tmp_path, SMALL, "small.yaml")


@pytest.fixture
def experiment_cli(cli: Any, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`govern run EXPERIMENT --data SAMPLE --workers 1 ARGS` in this process."""

    def go(experiment: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return cli("run", str(experiment), *DATA, "--workers", "1", *args, home=tmp_path / "home",
                   **TEST_KEYS)  # fmt: skip

    return go


# -- killed part-way, and run again ----------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("moment", ["part_way", "at_once"])
def test_killed_with_sigkill_then_run_again_equals_a_run_never_interrupted(
    moment: str, grid: Path, tmp_path: Path, reference: tuple[Path, Store]
) -> None:
    """The issue's interrupt test. SIGKILL goes to the parent alone: its workers must die
    with it (nothing may go on writing to cells the next run resumes)."""
    out = tmp_path / "out"
    process = start(grid, out, "--workers", "2")
    try:
        if moment == "part_way":  # some items stored, not all
            wait_for(lambda: 0 < stored_count(out) < GRID_ITEMS, process, "item stored")
        else:  # as soon as the experiment is described, before any worker may have started
            wait_for(lambda: (out / "experiment.json").exists(), process, "experiment.json")
        workers = descendants(process.pid)
        process.kill()
        assert process.wait(30) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while any(map(alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = [pid for pid in workers if alive(pid)]
        assert not survivors, f"workers outlived their parent: {survivors}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in descendants(process.pid):  # never leave a worker of ours behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    if moment == "part_way":
        assert 0 < Store(out).rows < GRID_ITEMS
    again = run(grid, out, "--workers", "2")
    assert again.returncode == 0, said(again)
    same_results(Store(out), reference[1])
    assert len(Store(out).cells) == 8
    if moment == "part_way":  # every cell's ledger vouches for every stored row
        audit = govern_process("audit", str(out), env=environment(), cwd=grid.parent)
        assert audit.returncode == 0, said(audit)


# The grid again, each call of the simulator taking 40 ms, so that a cell is caught mid-run:
# the same cell ids (the institutions' names) and the same numbers but for latency.
SLOW = """\
id: slow_{name}
institution: ../institutions/{name}.yaml
simulator: {{sim/weak: {{latency_ms: 40}}, sim/strong: {{latency_ms: 40}}}}
"""
SLOW_GRID = GRID.replace(
    "  - ../institutions/bare.yaml\n  - ../institutions/tang.yaml\n",
    "  - {path: slow_bare.yaml, name: bare}\n  - {path: slow_tang.yaml, name: tang}\n",
)


def mid_run(out: Path) -> str | None:
    """A cell whose run has stored results and whose ledger is not sealed yet."""
    for ledger in sorted(out.glob("cells/*/ledger.jsonl")):
        results = ledger.with_name("results.jsonl")
        if not (results.exists() and results.stat().st_size):
            continue
        try:
            last = json.loads(ledger.read_bytes().rstrip().rsplit(b"\n", 1)[-1])
        except ValueError:  # a line being written
            continue
        if last.get("kind") != "seal":
            return ledger.parent.name
    return None


@pytest.mark.parametrize(
    ("signum", "workers", "group", "status"),
    [
        (signal.SIGTERM, "2", False, 143),
        (signal.SIGINT, "2", False, 130),
        (signal.SIGINT, "2", True, 130),
        (signal.SIGTERM, "1", False, 143),
    ],
    ids=["sigterm-workers", "sigint-workers", "ctrl-c-at-a-terminal", "sigterm-in-process"],
)
def test_sigterm_or_ctrl_c_stops_cleanly_and_the_same_command_resumes(
    signum: int,
    workers: str,
    group: bool,
    status: int,
    tmp_path: Path,
    reference: tuple[Path, Store],
) -> None:
    """SIGTERM (a scheduler's stop) and SIGINT to the parent, or Ctrl-C at a terminal (SIGINT
    to the parent and its workers): a cell caught mid-run is sealed as interrupted, no cell
    is left "running", the exit says which signal, and the same command again ends with the
    numbers of a run never interrupted. Workers leave Ctrl-C to the parent, which stops them
    with SIGTERM; one that died of it while preparing a cell broke the process pool, whose
    second SIGTERM to every worker killed those sealing their ledgers."""
    for name in ("bare", "tang"):
        write(tmp_path / "manifests", f"slow_{name}.yaml", SLOW.format(name=name))
    grid = project(tmp_path, SLOW_GRID)
    out = tmp_path / "out"
    process = start(grid, out, "--workers", workers, group=group)
    caught: list[str] = []

    def caught_one() -> bool:
        cell = mid_run(out)
        caught.extend([cell] if cell else [])
        return cell is not None

    try:
        wait_for(caught_one, process, "a cell caught mid-run")
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        assert process.wait(60) == status
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = " ".join(out.with_suffix(".log").read_text().split())
    assert f"interrupted by {signal.Signals(signum).name}" in log and "Traceback" not in log
    assert "run the same command again to resume" in log
    ends = ledger_ends(out)
    assert ends[caught[-1]] == "interrupted", ends
    store = Store(out)
    assert "running" not in store.cells.values(), store.cells
    assert store.rows < GRID_ITEMS
    if workers == "2" and (group or signum == signal.SIGTERM):  # the others resume as these do
        again = run(grid, out, "--workers", workers)
        assert again.returncode == 0, said(again)
        same_results(Store(out), reference[1])


def test_store_reopened_in_one_process_keeps_its_log_for_the_other_connection(
    tmp_path: Path,
) -> None:
    """Regression: the store's file check opened and closed the file in Python, which drops
    every POSIX lock the process holds on it. With the runner's store open and the progress
    thread opening it again, a worker closing its store found no other reader and deleted
    the write-ahead log under them: "database disk image is malformed" (exit 70) in a
    two-worker run, or commits other processes never see."""
    path = tmp_path / "results.sqlite"
    other = (
        "import sys; from govern.experiments.store import ResultsStore\n"
        "with ResultsStore.open(sys.argv[1], 'e', 'd') as store:\n"
        "    store.record_item('c', 0, {'id': sys.argv[2]})\n"
    )
    with ResultsStore.open(path, "e", "d", cells={"c": "x"}) as runner:
        runner.record_item("c", 0, {"id": "a"})
        ResultsStore.open(path, "e", "d").close()  # as the progress thread does
        subprocess.run([sys.executable, "-c", other, str(path), "b"], check=True, cwd=ROOT)
        assert path.with_name("results.sqlite-wal").exists(), "the log was deleted under us"
        runner.record_item("c", 0, {"id": "c"})
        seen = subprocess.run(
            [sys.executable, "-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1])"
             ".execute('SELECT count(*) FROM items').fetchone()[0])", str(path)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert seen.strip() == "3"  # another process sees this one's commits


# -- budgets -----------------------------------------------------------------------------------

BUDGETED = """\
kind: experiment
id: budgeted
institutions:
  - ../institutions/bare.yaml
  - ../institutions/tang.yaml
models: [sim/weak]
tasks:
  - {name: gsm8k, limit: 15}
seeds: [0]
"""
MOST_CALLS_PER_ITEM = 40  # Tang: a draft, reviews, six ministries, re-asks: far fewer


def test_a_budget_stops_part_way_and_a_raised_one_resumes_to_the_same_numbers(
    tmp_path: Path, reference: tuple[Path, Store]
) -> None:
    """The issue's budget test: the cap stops the experiment (exit 3, naming the budget,
    resumable), the same cap again runs nothing, and limits: in the file may be raised
    without --force-new (they change no result)."""
    experiment = project(tmp_path, BUDGETED, "budgeted.yaml")
    out = tmp_path / "out"
    one_item = ("--workers", "1", "--concurrency", "1")  # one item in flight: a tight bound
    stopped = run(experiment, out, *one_item, "--max-calls", "40")
    assert stopped.returncode == 3, said(stopped)
    assert "stopped: the experiment's call budget is spent" in said(stopped)
    first = Store(out)
    assert 40 <= first.calls < 40 + MOST_CALLS_PER_ITEM
    assert 0 < first.rows < 30
    assert "running" not in first.cells.values() and "pending" not in first.cells.values()
    assert "stopped" in first.cells.values()

    folders = sorted(p.name for p in (out / "cells").iterdir())
    heads = {p: (p / "ledger.jsonl").read_bytes() for p in (out / "cells").iterdir()}
    again = run(experiment, out, *one_item, "--max-calls", "40")
    assert again.returncode == 3, said(again)
    assert "call budget is spent" in said(again)
    assert Store(out).numbers == first.numbers and Store(out).calls == first.calls
    assert sorted(p.name for p in (out / "cells").iterdir()) == folders
    assert {p: (p / "ledger.jsonl").read_bytes() for p in heads} == heads  # nothing ran

    experiment.write_text(BUDGETED + "limits: {calls: 80}\n")  # the file's own cap
    more = run(experiment, out, *one_item)
    assert more.returncode == 3, said(more)  # no --force-new: limits are not the manifest
    assert 80 <= Store(out).calls < 80 + MOST_CALLS_PER_ITEM
    assert Store(out).rows > first.rows

    experiment.write_text(BUDGETED + "limits: {calls: 100000}\n")
    done = run(experiment, out, *one_item)
    assert done.returncode == 0, said(done)
    same_results(Store(out), reference[1])
    assert Store(out).rows == 30


# -- real models against a loopback server -------------------------------------------------


def real(text: str, model: str = "openai/test-model") -> str:
    """The experiment ``text`` with a real model's name, served by the loopback server."""
    return text.replace("models: [sim/weak]", f"models: [{model}]")


def questions(*indices: int) -> tuple[str, ...]:
    lines = SAMPLE.read_text().splitlines()
    return tuple(json.loads(lines[i])["question"] for i in indices)


class Picky(FaultServer):
    """Answers 500 to every call about one of the ``failing`` questions, the others as
    ``ok`` after ``delay`` seconds."""

    failing: tuple[str, ...] = ()
    delay = 0.0

    def take(self, body: dict) -> str:
        text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        mode = "server_error" if any(q in text for q in self.failing) else "ok"
        with self.lock:
            self.requests += 1
            self.served[mode] += 1
            self.bodies.append(body)
        if mode == "ok" and self.delay:
            time.sleep(self.delay)
        return mode


def errors_left(out: Path) -> int | None:
    """Stored items whose outcome is "error", read while a run writes the store."""
    try:
        db = sqlite3.connect(f"file:{out / 'results.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            query = "SELECT count(*) FROM items WHERE outcome = 'error'"
            return int(db.execute(query).fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return None


def test_failures_are_reported_and_retry_failed_replaces_them_in_place(tmp_path: Path) -> None:
    """Items that failed for real (HTTP 500 until the call's deadline) are said at the end
    with the hint; --retry-failed runs them again in retries/CELL/1, each with its own
    ledger, and replaces them in place. A retry cut short by SIGTERM resumes with the items
    it started with (it was refused as "started with other settings", its cell marked
    failed, for good); once none is left, --retry-failed calls nothing."""
    experiment = project(tmp_path, real(SMALL.replace("limit: 3", "limit: 4")), "real.yaml")
    out = tmp_path / "out"
    with Picky("ok") as server:
        server.failing = questions(1, 3)  # two of the four items of each seed fail
        base = ("--workers", "1", "--api-base", server.url, "--deadline", "1")
        first = run(experiment, out, *base)
        assert first.returncode == 0, said(first)  # every cell finished; items failed
        assert "4 items failed" in said(first) and "--retry-failed" in said(first)
        store = Store(out)
        failed = {k for k, o in store.outcomes.items() if o == "error"}
        assert len(failed) == 4 and {k[1] for k in failed} == {"sample/0001", "sample/0003"}
        main_results = {p: (p / "results.jsonl").read_bytes() for p in (out / "cells").iterdir()}

        server.failing, server.delay = (), 0.3  # well again, and slow: the retry is cut short
        cut = start(experiment, out, *base, "--retry-failed", "--concurrency", "1")
        try:
            wait_for(lambda: 0 < (errors_left(out) or 4) < 4, cut, "a failure retried")
            cut.send_signal(signal.SIGTERM)
            assert cut.wait(60) == 143, out.with_suffix(".log").read_text()
        finally:
            if cut.poll() is None:
                cut.kill()
                cut.wait()
        assert 0 < len([o for o in Store(out).outcomes.values() if o == "error"]) < 4
        assert set(Store(out).cells.values()) == {"finished"}  # a retry leaves them so

        server.delay = 0.0
        retried = run(experiment, out, *base, "--retry-failed")
        assert retried.returncode == 0, said(retried)
        assert "items failed" not in said(retried)
        after = Store(out)
        assert after.rows == len(after.keys) == 8 and after.keys == store.keys
        assert set(after.outcomes.values()) == {"completed"}
        for key in store.keys - failed:  # the items that had not failed are as they were
            assert after.numbers[key] == store.numbers[key]
        for cell in store.cells:
            retry = out / "retries" / cell / "1"
            ends = (retry / "ledger.jsonl").read_text().splitlines()
            assert json.loads(ends[-1])["body"]["reason"] == "complete"
            ids = [json.loads(line)["id"] for line in (retry / "results.jsonl").open()]
            assert sorted(ids) == ["sample/0001", "sample/0003"]
        assert {p: (p / "results.jsonl").read_bytes() for p in main_results} == main_results

        asked = server.requests
        nothing = run(experiment, out, *base, "--retry-failed")
        assert nothing.returncode == 0, said(nothing)
        assert server.requests == asked  # no failure left to run again
        assert not list(out.glob("retries/*/2")) and Store(out).numbers == after.numbers
    audit = govern_process("audit", str(out), env=environment(), cwd=tmp_path)
    assert audit.returncode == 0, said(audit)


def test_a_second_real_model_run_is_answered_from_the_cache_and_costs_nothing(
    tmp_path: Path,
) -> None:
    """The issue's cache test, on a whole experiment."""
    experiment = project(tmp_path, real(SMALL), "real.yaml")
    out = tmp_path / "out"
    cache = {"GOVERN_CACHE": str(tmp_path / "cache" / "responses.sqlite")}
    with FaultServer("ok") as server:
        first = run(experiment, out, "--workers", "1", "--api-base", server.url, **cache)
        assert first.returncode == 0, said(first)
        asked = server.requests
        assert asked == Store(out).calls > 0
        again = run(
            experiment, out, "--workers", "1", "--api-base", server.url, "--force-new", **cache
        )
        assert again.returncode == 0, said(again)
        assert server.requests == asked, "the second run called the server"
    store = Store(out)
    assert store.rows == 6 and store.cost == 0.0 and store.unknown_cost == 0
    assert "spent in all: 6 calls" in said(again) and "$0.0000" in said(again)
    for cell in store.cells:
        folder = out / "cells" / cell
        assert json.loads((folder / "summary.json").read_text())["cached_calls"] == 3
        turns = [t for line in (folder / "results.jsonl").open() for t in json.loads(line)["turns"]]
        assert turns and all(t["cached"] for t in turns)
        entries = [json.loads(line) for line in (folder / "ledger.jsonl").open()]
        calls = [e for e in entries if e["kind"] == "turn"]
        assert calls and all(e["body"].get("cached") for e in calls)


def test_a_dollar_budget_stops_at_the_first_cost_no_price_is_known_for(tmp_path: Path) -> None:
    """A dollar budget cannot be kept when litellm knows no price for the model: the run
    went on to the end, exit 0, its known spend $0 of any budget. It stops now, saying so."""
    experiment = project(tmp_path, real(SMALL), "real.yaml")
    out = tmp_path / "out"
    with FaultServer("ok") as server:
        args = ("--workers", "1", "--concurrency", "1", "--api-base", server.url)
        result = run(experiment, out, *args, "--max-dollars", "5")
        assert result.returncode == 3, said(result)
        assert "dollar budget cannot be kept: 1 item cost an amount no price is known" in said(
            result
        )
        assert server.requests == 1 and Store(out).rows == 1
        assert "running" not in Store(out).cells.values()


class Throttled(FaultServer):
    """Answers 429 with Retry-After to every call for ``window`` seconds from the first,
    then as ``ok``; keeps when each call about each question came and how it was answered."""

    window = 1.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened: float | None = None
        self.log: list[tuple[float, str, str]] = []

    def take(self, body: dict) -> str:
        now = time.monotonic()
        text = json.dumps(body.get("messages", []), sort_keys=True)
        with self.lock:
            self.opened = self.opened if self.opened is not None else now
            mode = "rate_limit" if now - self.opened < self.window else "ok"
            self.requests += 1
            self.served[mode] += 1
            self.log.append((now, text, mode))
        return mode


def test_a_rate_limited_server_is_waited_for_and_the_experiment_completes(
    tmp_path: Path,
) -> None:
    """The issue's rate-limit test: no failure, each refused call asked again no sooner than
    Retry-After says, and done in a time of the order the refusals imply."""
    experiment = project(tmp_path, real(SMALL.replace("limit: 3", "limit: 6")), "real.yaml")
    out = tmp_path / "out"
    with Throttled("ok", retry_after=1) as server:
        began = time.monotonic()
        result = run(experiment, out, "--workers", "1", "--api-base", server.url)
        took = time.monotonic() - began
    assert result.returncode == 0, said(result)
    store = Store(out)
    assert store.rows == 12 and set(store.outcomes.values()) == {"completed"}
    assert server.served["rate_limit"] >= 2 and server.served["ok"] == 12
    for i, (when, text, mode) in enumerate(server.log):
        if mode == "rate_limit":  # the same call again, after the server's Retry-After
            later = [t for t, same, _ in server.log[i + 1 :] if same == text]
            assert later and later[0] - when >= 0.95, "Retry-After was not honoured"
    # Each call is refused at most twice (1.5 s of refusals, 1 s apart): a few seconds of
    # waiting in all. The bound is far above that, for a loaded machine.
    assert took < 60
    attempts = [
        t["attempts"]
        for cell in store.cells
        for line in (out / "cells" / cell / "results.jsonl").open()
        for t in json.loads(line)["turns"]
    ]
    assert max(attempts) in (2, 3) and max(attempts) <= 4


# -- a changed experiment --------------------------------------------------------------------


@pytest.mark.parametrize("change", ["seeds", "institution"])
def test_a_changed_experiment_is_refused_saying_what_changed_unless_force_new(
    change: str, small: Path, tmp_path: Path, experiment_cli: Any
) -> None:
    out = tmp_path / "out"
    first = experiment_cli(small, "--out", str(out))
    assert first.returncode == 0, said(first)
    if change == "seeds":
        small.write_text(SMALL.replace("seeds: [0, 1]", "seeds: [0, 2]"))
        words = ["manifest digest", "(stored) !=", "cells added: bare.sim-weak.gsm8k.s2"]
    else:  # a file the experiment names, not the experiment itself
        bare = tmp_path / "institutions" / "bare.yaml"
        bare.write_text(bare.read_text().replace("purpose:", "purpose: Be brief.", 1))
        words = ["cells whose digest changed: bare.sim-weak.gsm8k.s0 ("]
    refused = experiment_cli(small, "--out", str(out))
    assert refused.returncode == 2, said(refused)
    assert "was written for a different manifest" in said(refused)
    for word in words:
        assert word in said(refused)
    assert "--force-new" in said(refused)
    before = Store(out).numbers

    fresh = experiment_cli(small, "--out", str(out), "--force-new")
    assert fresh.returncode == 0, said(fresh)
    assert "the earlier experiment's store was moved to" in said(fresh)
    assert "the earlier experiment's cells were moved to" in said(fresh)
    (old_store,) = out.glob("results.sqlite.replaced-*")
    (old_cells,) = out.glob("cells.replaced-*")
    assert len(list(old_cells.iterdir())) == 2
    kept = sqlite3.connect(old_store)
    assert kept.execute("SELECT count(*) FROM items").fetchone()[0] == len(before)
    kept.close()
    assert Store(out).rows == 6 and set(Store(out).cells.values()) == {"finished"}


def test_files_changed_while_it_runs_stop_the_cells_not_yet_run(
    grid: Path, tmp_path: Path, experiment_cli: Any, reference: tuple[Path, Store]
) -> None:
    """Each cell loads the experiment's files when it starts: an institution edited while
    the experiment runs would make the later cells run another manifest than the one the
    store was opened for, and mix two in one store (they ran, and were stored as finished).
    Now such a cell is refused saying which file changed, and runs once it is put back."""
    from govern.experiments.executors import InlineExecutor
    from govern.experiments.runner import (
        ExperimentRequest,
        prepare_experiment,
        run_experiment,
    )

    out = tmp_path / "out"
    tang = tmp_path / "institutions" / "tang.yaml"
    original = tang.read_text()
    prepared = prepare_experiment(ExperimentRequest(grid, out=out, data=SAMPLE, workers=1))
    try:
        tang.write_text(original.replace("max_visits: 2", "max_visits: 1"))  # after planning
        outcome = run_experiment(prepared, InlineExecutor())
    finally:
        prepared.release()
    refused = {o.cell for o in outcome.failed}
    assert refused == {c for c in prepared.planned if c.startswith("tang.")}
    for failed in outcome.failed:
        assert "the experiment changed while it ran" in failed.reason
        assert f"{tang} changed" in failed.reason and "--force-new" in failed.reason
        assert not (out / "cells" / failed.cell).exists()
    assert {cell for cell, _, _ in Store(out).keys} == set(prepared.planned) - refused

    tang.write_text(original)
    again = experiment_cli(grid, "--out", str(out))
    assert again.returncode == 0, said(again)
    same_results(Store(out), reference[1])


def test_a_cell_that_crashes_is_failed_in_the_store_not_left_running(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception out of a cell's run (a bug, or a file changed under a running cell)
    was reported, but the store went on saying the cell was running."""
    from govern.experiments.executors import InlineExecutor
    from govern.experiments.runner import ExperimentRequest, prepare_experiment, run_experiment

    async def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("govern.run.runner.execute", crash)
    out = tmp_path / "out"
    prepared = prepare_experiment(ExperimentRequest(small, out=out, data=SAMPLE, workers=1))
    try:
        outcome = run_experiment(prepared, InlineExecutor())
    finally:
        prepared.release()
    assert {o.reason for o in outcome.failed} == {"RuntimeError: a bug"}
    store = Store(out)
    assert set(store.cells.values()) == {"failed"}
    assert set(store.reasons.values()) == {"RuntimeError: a bug"}


# -- hostile and careless input ---------------------------------------------------------------


def _a_file(out: Path) -> None:
    out.write_text("not a folder\n")


def _a_folder_of_something_else(out: Path) -> None:
    write(out, "notes.txt", "mine\n")


def _a_single_run(out: Path) -> None:
    write(out, "manifest.json", '{"run": "x", "request": {}}\n')  # what marks a run folder
    write(out, "ledger.jsonl", "")


def _a_store_replaced_by_garbage(out: Path) -> None:
    write(out, "results.sqlite", "garbage " * 100)
    (out / "cells").mkdir()


def _cells_a_file(out: Path) -> None:
    write(out, "experiment.json", "{}\n")
    write(out, "cells", "not a folder\n")


HOSTILE_OUT: dict[str, tuple[Callable[[Path], None], str]] = {
    "cells-a-file": (_cells_a_file, "cannot create the cells' folder"),
    "a-file": (_a_file, "exists and is not a folder"),
    "another-folder": (_a_folder_of_something_else, "is not empty and holds no experiment"),
    "a-single-run": (_a_single_run, "is not empty and holds a single run"),
    "a-garbage-store": (_a_store_replaced_by_garbage, "is not an SQLite database"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_OUT))
def test_an_out_folder_that_is_no_experiment_is_refused_untouched(
    case: str, small: Path, tmp_path: Path, experiment_cli: Any
) -> None:
    make, words = HOSTILE_OUT[case]
    out = tmp_path / "out"
    make(out)
    before = sorted(p.name for p in out.iterdir()) if out.is_dir() else out.read_bytes()
    result = experiment_cli(small, "--out", str(out))
    assert result.returncode == 2, said(result)
    assert words in said(result) and "Traceback" not in result.stderr
    assert before == (sorted(p.name for p in out.iterdir()) if out.is_dir() else out.read_bytes())


@pytest.mark.parametrize(
    "option",
    [
        "--workers=0",
        "--workers=-3",
        "--max-dollars=-1",
        "--max-dollars=nan",
        "--max-dollars=inf",
        "--max-calls=0",
        "--max-tokens=1.5",
        "--concurrency=0",
    ],
)
def test_numbers_out_of_range_are_refused_before_anything_runs(
    option: str, small: Path, tmp_path: Path, experiment_cli: Any
) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exited:  # argparse's usage error, in this process
        experiment_cli(small, "--out", str(out), option)
    assert exited.value.code == 2
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("--seed=3", "--seed: an experiment sets these in its file"),
        ("--data=/nonexistent/gsm8k.jsonl", "GSM8K data from --data not found"),
        ("--resume=somewhere", "--resume DIR continues a single run; an experiment resumes"),
        ("--ray-address=auto", "--ray-address is for --executor ray"),
    ],
)
def test_options_that_make_no_sense_for_this_experiment_are_refused(
    option: str, words: str, small: Path, tmp_path: Path, experiment_cli: Any
) -> None:
    out = tmp_path / "out"
    result = experiment_cli(small, "--out", str(out), option)
    assert result.returncode == 2, said(result)
    assert words in said(result) and "Traceback" not in result.stderr
    assert not (out / "results.sqlite").exists()


def test_resume_on_an_experiment_folder_says_how_an_experiment_resumes(
    small: Path, tmp_path: Path, experiment_cli: Any, cli: Any
) -> None:
    out = tmp_path / "out"
    assert experiment_cli(small, "--out", str(out)).returncode == 0
    result = cli("run", "--resume", str(out), home=tmp_path / "home", **TEST_KEYS)
    assert result.returncode == 2, said(result)
    assert "an experiment resumes when the command that started it is run again" in said(result)


def test_the_usage_errors_say_so_in_a_real_process(small: Path, tmp_path: Path) -> None:
    """The same refusals as a user sees them: one line, exit 2, no traceback."""
    for args, words in [
        (("--workers", "0"), "--workers: expected a whole number of at least 1"),
        (("--max-dollars", "nan"), "expected an amount of dollars above 0"),
        (("--max-dollars=-1",), "expected an amount of dollars above 0"),
        (("--max-dollars", "inf"), "expected an amount of dollars above 0"),
    ]:
        result = run(small, tmp_path / "out", *args)
        assert result.returncode == 2 and words in said(result), said(result)
        no_traceback(result)


def test_a_missing_task_data_file_is_refused_plainly(small: Path, tmp_path: Path) -> None:
    result = govern_process(
        "run", str(small), "--data", str(tmp_path / "gone.jsonl"), "--out", str(tmp_path / "o"),
        env=environment(), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, said(result)
    assert "GSM8K data from --data not found" in said(result)
    no_traceback(result)
    assert not (tmp_path / "o" / "results.sqlite").exists()


def test_experiment_json_deleted_between_runs_is_written_again(
    small: Path, tmp_path: Path, experiment_cli: Any
) -> None:
    out = tmp_path / "out"
    assert experiment_cli(small, "--out", str(out)).returncode == 0
    described = json.loads((out / "experiment.json").read_text())
    (out / "experiment.json").unlink()
    again = experiment_cli(small, "--out", str(out))
    assert again.returncode == 0, said(again)
    assert "2 were finished before" in said(again)
    assert json.loads((out / "experiment.json").read_text())["cells"] == described["cells"]


CELL = "bare.sim-weak.gsm8k.s0"


@pytest.mark.parametrize("deleted", ["cell-folder", "cell-ledger", "store"])
def test_a_deleted_part_of_a_finished_experiment_is_redone_or_rebuilt(
    deleted: str, small: Path, tmp_path: Path, experiment_cli: Any
) -> None:
    """A finished cell whose run folder or ledger is gone has stored numbers no ledger
    vouches for any more: they are dropped, aloud, what is left is moved aside, and the
    cell runs again (before, the run said all was finished and `govern audit` failed). A
    deleted store is rebuilt from the cells' run folders (before: "holds no experiment")."""
    out = tmp_path / "out"
    assert experiment_cli(small, "--out", str(out)).returncode == 0
    before = Store(out)
    if deleted == "cell-folder":
        shutil.rmtree(out / "cells" / CELL)
    elif deleted == "cell-ledger":
        (out / "cells" / CELL / "ledger.jsonl").unlink()
    else:
        for path in out.glob("results.sqlite*"):
            path.unlink()
    again = experiment_cli(small, "--out", str(out))
    assert again.returncode == 0, said(again)
    if deleted == "store":
        assert "no run folder" not in said(again)
    else:
        assert (
            f"cell {CELL} has no run folder with a ledger" in said(again)
            and "3 stored items are vouched for by no ledger" in said(again)
            and "the cell runs again" in said(again)
        )
    if deleted == "cell-ledger":
        (aside,) = out.glob(f"cells.replaced-*/{CELL}")
        assert (aside / "results.jsonl").is_file()
    assert (out / "cells" / CELL / "ledger.jsonl").is_file()
    same_results(Store(out), before)
    result = govern_process("audit", str(out), env=environment(), cwd=tmp_path)
    assert result.returncode == 0, said(result)


def test_a_cell_that_cannot_run_fails_alone_with_its_reason_and_exit_1(
    small: Path, tmp_path: Path, experiment_cli: Any
) -> None:
    out = tmp_path / "out"
    stopped = experiment_cli(small, "--out", str(out), "--max-calls", "1")  # one cell run
    assert stopped.returncode == 3, said(stopped)
    other = "bare.sim-weak.gsm8k.s1"
    write(out / "cells" / other, "notes.txt", "something of the user's, where the cell goes\n")
    result = experiment_cli(small, "--out", str(out))
    assert result.returncode == 1, said(result)
    assert f"cell {other} failed:" in said(result)  # on the console, wrapped by rich
    assert f"{out / 'cells' / other} is not empty; choose a new --out folder" in result.stderr
    store = Store(out)
    assert store.cells == {CELL: "finished", other: "failed"}
    assert store.rows == 3 and "Traceback" not in result.stderr


def test_a_second_run_of_the_same_experiment_at_once_is_refused_and_harms_nothing(
    tmp_path: Path,
) -> None:
    """Two `govern run`s of one experiment folder at once would race for its cells' ledgers
    (a cell failing with FileExistsError, statuses overwritten): the second is refused."""
    write(tmp_path / "manifests", "slow.yaml", (
        "id: slow\ninstitution: ../institutions/bare.yaml\n"
        "simulator: {sim/weak: {latency_ms: 400}}\n"
    ))  # fmt: skip
    slow = SMALL.replace("../institutions/bare.yaml", "slow.yaml").replace("limit: 3", "limit: 8")
    experiment = project(tmp_path, slow, "slow.yaml.exp.yaml")
    out = tmp_path / "out"
    first = start(experiment, out, "--workers", "1", "--concurrency", "1")
    try:
        wait_for(lambda: stored_count(out) > 0, first, "item stored")
        second = run(experiment, out, "--workers", "1")
        assert first.poll() is None, "the first run ended before the second was refused"
        assert first.wait(120) == 0, out.with_suffix(".log").read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.returncode == 2, said(second)
    assert "is being run by another `govern run` right now" in said(second)
    no_traceback(second)
    store = Store(out)
    assert store.rows == len(store.keys) == 16 and set(store.cells.values()) == {"finished"}
    assert set(ledger_ends(out).values()) == {"complete"}


def test_a_folder_held_by_another_run_is_refused_until_it_is_let_go(
    small: Path, tmp_path: Path, experiment_cli: Any
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    held = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        refused = experiment_cli(small, "--out", str(out))
        assert refused.returncode == 2 and "being run by another" in said(refused)
        assert list(out.iterdir()) == []
    finally:
        os.close(held)
    assert experiment_cli(small, "--out", str(out)).returncode == 0
    # and the lock is let go when the run ends: the same command again resumes at once
    assert experiment_cli(small, "--out", str(out)).returncode == 0


def test_what_a_run_reports_is_shown_escaped_and_never_as_markup() -> None:
    """A failure's reason names the user's model or file: no terminal escape, bidi override or
    rich markup from it reaches the console."""
    from rich.console import Console

    from govern.experiments.progress import shown

    console = Console(record=True, width=200, color_system=None)
    reason = "sim/weak\u202ex \x00\x1b[2J [red]boom[/]\nnext"
    console.print("cell failed: " + shown(reason))
    text = console.export_text()
    assert "\\u202e" in text and "\\x00" in text and "\\x1b[2J" in text
    assert "[red]boom[/]" in text and "\u202e" not in text and "\x1b" not in text
    assert text.splitlines()[1] == "next"
