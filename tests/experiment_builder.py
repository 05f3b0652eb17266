"""Experiment folders for the tests of `govern compare` and `govern report`.

`build_experiment` writes a small experiment manifest into a project folder of its own (with
copies of the institutions it names) and runs it with `govern run EXPERIMENT.yaml --out
FOLDER`, in this process, so the readers are tested on exactly what the runner writes:
``experiment.json``, ``results.sqlite`` and ``cells/<CELL_ID>/`` run folders. A cell named in
``skip`` is then made to look not yet run (its items, ledger heads and folder removed, its
status pending), as an interrupted experiment leaves its later cells.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
import yaml

from govern.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tasks" / "gsm8k_sample.jsonl"
TEST_KEYS = {"GOVERN_LEDGER_KEY": "5e" * 32, "GOVERN_SIGNING_KEY": "a7" * 32}


@contextlib.contextmanager
def _quiet_keys() -> Iterator[None]:
    with (
        mock.patch.dict(os.environ, {**TEST_KEYS, "GOVERN_CACHE": "off"}),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        yield


def build_experiment(
    folder: Path,
    *,
    institutions: list[str],
    models: list[str],
    seeds: list[int],
    limit: int,
    experiment_id: str = "fixture",
    description: str | None = "a test experiment",
    skip: frozenset[str] = frozenset(),
    task: str = "gsm8k",
    data: Path | None = SAMPLE,
    support: tuple[str, ...] = (),
) -> Path:
    """An experiment folder of institutions x models x task x seeds, ``limit`` items each
    (institutions, and the ``support`` files they name: paths relative to this project,
    copied into the experiment's own; ``data``: the task's data, None for its own)."""
    project = folder.with_name(folder.name + "-project")
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'fixture'\n")
    for relative in [*institutions, *support]:
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, project / relative)
    manifest = project / "experiment.yaml"
    spec = {
        "kind": "experiment",
        "id": experiment_id,
        "description": description,
        "institutions": institutions,
        "models": models,
        "tasks": [{"name": task, "limit": limit}],
        "seeds": seeds,
    }
    manifest.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    args = ["run", str(manifest), "--out", str(folder), "--workers", "2"]
    args += ["--data", str(data)] if data is not None else []
    with _quiet_keys():
        status = main(args)
    assert status == 0, f"govern {' '.join(args)} exited {status}"
    for cell in sorted(skip):
        _unrun(folder, cell)
    return folder


def _unrun(folder: Path, cell: str) -> None:
    """Make a finished cell look as if it had not run yet."""
    with contextlib.closing(sqlite3.connect(folder / "results.sqlite")) as db, db:
        db.execute("DELETE FROM items WHERE cell = ?", (cell,))
        db.execute("DELETE FROM ledger_heads WHERE cell = ?", (cell,))
        db.execute("UPDATE cells SET status = 'pending' WHERE cell = ?", (cell,))
    shutil.rmtree(folder / "cells" / cell)


SMALL_SKIPPED = "senate.sim-strong.gsm8k.s1"


_built: dict[str, Path] = {}


def small_experiment(factory: pytest.TempPathFactory) -> Path:
    """A real experiment folder, built once per test session: bare and the senate x
    sim/weak and sim/strong x seeds 0 and 1 x 12 GSM8K sample items; one cell
    (SMALL_SKIPPED) described but not run yet. Tests copy it before changing it."""
    if "small" not in _built:
        _built["small"] = build_experiment(
            factory.mktemp("experiment") / "exp",
            institutions=["institutions/bare.yaml", "manifests/senate.yaml"],
            models=["sim/weak", "sim/strong"],
            seeds=[0, 1],
            limit=12,
            skip=frozenset({SMALL_SKIPPED}),
        )
    return _built["small"]
