"""`govern run EXPERIMENT.yaml --executor ray`: cells as Ray tasks, the same store as local.

A local Ray instance is started by govern itself (no --ray-address) in a subprocess, as a
user runs it; its store must equal the default executor's, cell for cell and number for
number, its ledgers must audit clean, and a SIGTERM part-way must seal the cells in flight
and resume to the same numbers. Without Ray, `--executor ray` is refused with the pip hint.
Skipped, saying why, only when Ray cannot be imported (`make test` installs it).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from govern.experiments.runner import CellJob, CellOutcome
from govern.experiments.store import ResultsStore
from tests.conftest import write
from tests.test_experiment_runner import (
    Store,
    environment,
    ledger_ends,
    mid_run,
    no_traceback,
    project,
    run,
    said,
    same_results,
    start,
    wait_for,
)

# 2 institutions x 1 model x 4 items x 2 seeds: 4 cells, 16 items
GRID = """\
kind: experiment
id: ray_grid
institutions:
  - ../institutions/bare.yaml
  - ../institutions/tang.yaml
models: [sim/medium]
tasks:
  - {name: gsm8k, limit: 4}
seeds: [0, 1]
"""
ITEMS = 16

# The same cells with each simulated call taking 60 ms, to be caught mid-run: the same
# cell ids (the institutions' names) and the same numbers but for latency.
SLOW = """\
id: slow_{name}
institution: ../institutions/{name}.yaml
simulator: {{sim/medium: {{latency_ms: 60}}}}
"""
SLOW_GRID = GRID.replace(
    "  - ../institutions/bare.yaml\n  - ../institutions/tang.yaml\n",
    "  - {path: slow_bare.yaml, name: bare}\n  - {path: slow_tang.yaml, name: tang}\n",
)

RAY = ("--executor", "ray", "--workers", "2")


def _ray_importable() -> str | None:
    """Why Ray cannot be used here, or None. Asked in a subprocess: importing Ray in the
    test process would fix its environment before govern sets it."""
    probe = subprocess.run(
        [sys.executable, "-c", "import ray"], capture_output=True, text=True, check=False
    )
    if probe.returncode == 0:
        return None
    last = (probe.stderr.strip().splitlines() or ["import ray failed"])[-1]
    return f"Ray cannot be imported ({last}); pip install 'govern[ray]' (make test does)"


@pytest.fixture(scope="module")
def ray_available() -> None:
    reason = _ray_importable()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The grid with the default executor (worker processes): what Ray must reproduce."""
    root = tmp_path_factory.mktemp("local")
    result = run(project(root, GRID, "ray_grid.yaml"), root / "out", "--workers", "2")
    assert result.returncode == 0, said(result)
    store = Store(root / "out")
    assert store.rows == ITEMS and set(store.cells.values()) == {"finished"}
    return store


def test_a_grid_on_a_local_ray_instance_stores_what_local_workers_store(
    ray_available: None, local: Store, tmp_path: Path
) -> None:
    experiment = project(tmp_path, GRID, "ray_grid.yaml")
    home = tmp_path / "home"
    out = tmp_path / "ray"
    result = run(experiment, out, *RAY, HOME=str(home))
    assert result.returncode == 0, said(result)
    no_traceback(result)
    assert "16 of 16 items stored" in said(result)
    store = Store(out)
    assert store.rows == ITEMS and len(store.cells) == 4
    same_results(store, local)  # each (cell, item, seed) once, all finished, same numbers
    assert set(ledger_ends(out).values()) == {"complete"}
    audit = subprocess.run(
        [sys.executable, "-m", "govern.cli", "audit", str(out)],
        env=environment(),
        cwd=experiment.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert audit.returncode == 0, said(audit)
    assert not (home / ".ray").exists(), "Ray wrote its token into the user's home"


def tang_mid_run(out: Path, caught: list[str]) -> bool:
    """Whether a Tang cell (the slow ones; the bare cells run first) has stored results
    and no seal yet; if so it is noted in ``caught``."""
    cell = mid_run(out)
    if cell is None or not cell.startswith("tang."):
        return False
    caught.append(cell)
    return True


def test_sigterm_part_way_seals_the_cells_in_flight_and_the_same_command_resumes(
    ray_available: None, local: Store, tmp_path: Path
) -> None:
    for name in ("bare", "tang"):
        write(tmp_path / "manifests", f"slow_{name}.yaml", SLOW.format(name=name))
    experiment = project(tmp_path, SLOW_GRID, "ray_grid.yaml")
    out = tmp_path / "out"
    caught: list[str] = []
    process = start(experiment, out, *RAY, "--concurrency", "1")
    try:
        wait_for(lambda: tang_mid_run(out, caught), process, "a Tang cell mid-run")
        process.send_signal(signal.SIGTERM)
        assert process.wait(90) == 143, out.with_suffix(".log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = out.with_suffix(".log").read_text()
    assert "interrupted by SIGTERM" in log and "Traceback" not in log, log
    ends = ledger_ends(out)
    assert ends[caught[-1]] == "interrupted", ends  # cancelled, not killed: sealed
    assert "running" not in Store(out).cells.values()
    again = run(experiment, out, *RAY, "--concurrency", "4")
    assert again.returncode == 0, said(again)
    same_results(Store(out), local)


def test_without_ray_the_executor_is_refused_with_the_pip_hint(tmp_path: Path) -> None:
    """Ray missing (a package on the path whose import fails, as a missing one does): exit
    2 with the pip hint, no traceback, and no experiment folder made."""
    fake = tmp_path / "no_ray" / "ray"
    write(fake, "__init__.py", "raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n")
    experiment = project(tmp_path, GRID, "ray_grid.yaml")
    out = tmp_path / "out"
    result = run(experiment, out, "--executor", "ray", PYTHONPATH=str(fake.parent))
    assert result.returncode == 2, said(result)
    no_traceback(result)
    assert "--executor ray needs Ray: pip install 'govern[ray]'" in result.stderr
    assert not out.exists()


def test_ray_address_without_the_ray_executor_is_refused(cli: Any, tmp_path: Path) -> None:
    experiment = project(tmp_path, GRID, "ray_grid.yaml")
    out = tmp_path / "out"
    result = cli(
        "run", str(experiment), "--ray-address", "127.0.0.1:6379", "--out", str(out),
        home=tmp_path / "home",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--ray-address is for --executor ray" in result.stderr
    assert not out.exists()


def test_an_address_nothing_answers_on_is_refused_at_once(tmp_path: Path) -> None:
    """Ray itself would wait for such a cluster without end."""
    experiment = project(tmp_path, GRID, "ray_grid.yaml")
    out = tmp_path / "out"
    result = run(experiment, out, "--executor", "ray", "--ray-address", "127.0.0.1:1")
    if "needs Ray" in result.stderr:
        pytest.skip("Ray cannot be imported; pip install 'govern[ray]' (make test does)")
    assert result.returncode == 2, said(result)
    no_traceback(result)
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in result.stderr
    assert not out.exists()


def test_a_cell_that_raises_is_its_failure_and_a_false_done_starts_no_more(
    ray_available: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The executor alone, in this process, on a local instance of one CPU: a job that
    raises in its task (a bug: it has no limits) is the cell's failed outcome, with the
    task's own error, and once done answers False the other jobs never start."""
    from govern.experiments.ray_executor import AUTH_VARIABLES, RayExecutor

    for name in ("RAY_USAGE_STATS_ENABLED", *AUTH_VARIABLES):  # put back after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    cells = {f"cell{n}": "0" * 64 for n in range(3)}
    store = tmp_path / "results.sqlite"
    ResultsStore.open(store, "grid", "1" * 64, cells=cells).close()
    jobs = [
        CellJob(
            experiment=tmp_path / "grid.yaml",
            home=tmp_path,
            experiment_id="grid",
            digest="1" * 64,
            store=store,
            cell=cell,
            seed=0,
            folder=tmp_path / "cells" / cell,
            limits=None,  # type: ignore[arg-type]
        )
        for cell in cells
    ]
    seen: list[CellOutcome] = []

    def done(outcome: CellOutcome) -> bool:
        seen.append(outcome)
        return False

    before = signal.getsignal(signal.SIGTERM)
    RayExecutor(None, 1).run(jobs, done)
    assert signal.getsignal(signal.SIGTERM) is before  # Ray's own handler not left behind
    assert [o.cell for o in seen] == ["cell0"]
    assert seen[0].end == "failed", seen[0]
    assert (seen[0].reason or "").startswith("AttributeError: "), seen[0].reason
    with ResultsStore.open(store, "grid", "1" * 64) as opened:  # closed cleanly by the keeper
        statuses = {cell.id: cell.status for cell in opened.cells()}
    assert set(statuses.values()) == {"pending"}, statuses  # it failed before it began


def test_a_node_with_other_ledger_keys_runs_no_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray node whose keys differ from govern's (or that has none) would sign ledgers that
    do not audit, or make keys of its own: its cell fails, saying how to give it the keys."""
    from govern.experiments.ray_executor import keys_in_use, keys_problem

    ours = keys_in_use(None)  # the test keys, from the environment
    assert keys_problem(None, ours) is None
    other = keys_problem(None, ("another-key", ours[1]))
    assert other is not None and "other ledger keys than govern" in other
    assert "GOVERN_LEDGER_KEY and GOVERN_SIGNING_KEY" in other
    monkeypatch.delenv("GOVERN_LEDGER_KEY")  # a signing key alone: unusable
    none = keys_problem(None, ours)
    assert none is not None and "GOVERN_SIGNING_KEY is set without GOVERN_LEDGER_KEY" in none
