"""Experiment folders for the tests of `govern compare` and `govern report`.

`build_experiment` lays out what `govern run EXPERIMENT.yaml` writes: ``experiment.json``,
``results.sqlite`` and ``cells/<CELL_ID>/`` run folders. Each cell is a real single run
(`govern run MANIFEST --out cells/ID`, in this process), recorded into a real ResultsStore
with its ledger head, so the readers are tested on genuine files. When the experiment runner
lands, this module is the one place to swap for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from govern import __version__
from govern.cli import main
from govern.experiments.spec import cell_id, model_label
from govern.experiments.store import ResultsStore
from govern.ledger.proofs import head_of, latest_seal
from govern.spec.loader import LoadedManifest, load_spec

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tasks" / "gsm8k_sample.jsonl"
TEST_KEYS = {"GOVERN_LEDGER_KEY": "5e" * 32, "GOVERN_SIGNING_KEY": "a7" * 32}


def institution_label(path: Path) -> str:
    """A base's label as experiment cell ids use it: the manifest's or institution's id."""
    loaded = load_spec(path)
    if isinstance(loaded, LoadedManifest):
        return loaded.manifest.id
    return loaded.institution.id  # type: ignore[union-attr]


@contextlib.contextmanager
def _quiet_keys() -> Iterator[None]:
    with (
        mock.patch.dict(os.environ, {**TEST_KEYS, "GOVERN_CACHE": "off"}),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()) as err,
    ):
        yield
    del err


def run_cell(base: Path, model: str, seed: int, limit: int, out: Path) -> None:
    """One cell: `govern run BASE --task gsm8k --limit N --model M --seed S --out OUT`."""
    args = ["run", str(base), "--task", "gsm8k", "--data", str(SAMPLE), "--limit", str(limit)]
    args += ["--model", model, "--seed", str(seed), "--out", str(out), "--concurrency", "4"]
    with _quiet_keys():
        status = main(args)
    assert status == 0, f"govern {' '.join(args)} exited {status}"


def record_cell(store: ResultsStore, cell: str, seed: int, folder: Path) -> None:
    """A finished run folder's results and ledger head into the store, as the runner does."""
    for line in (folder / "results.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            store.record_item(cell, seed, json.loads(line))
    seal = latest_seal((folder / "ledger.jsonl").read_bytes().splitlines())
    assert seal is not None, f"{folder} has no sealed ledger"
    store.record_ledger_head(cell, head_of(seal))
    store.set_cell_status(cell, "finished", folder=folder)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
) -> Path:
    """An experiment folder of institutions x models x gsm8k x seeds, ``limit`` items each;
    cells named in ``skip`` are described but not run (no items, no folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    bases = [(ROOT / p, institution_label(ROOT / p)) for p in institutions]
    cells = []
    for (base, label), model, seed in ((b, m, s) for b in bases for m in models for s in seeds):
        ident = cell_id(label, model_label(model), "gsm8k", seed, None)
        cells.append(
            {
                "id": ident,
                "institution": label,
                "model": model_label(model),
                "task": "gsm8k",
                "seed": seed,
                "overlay": None,
                "digest": _digest(f"{base}:{model}:{seed}:{limit}"),
                "folder": f"cells/{ident}",
                "models": [model],
                "items": limit,
                "_base": base,
                "_model": model,
            }
        )
    manifest = f"{experiment_id}:{institutions}:{models}:{seeds}:{limit}"
    digest = _digest(manifest)
    digests = {c["id"]: c["digest"] for c in cells}
    path = folder / "results.sqlite"
    with ResultsStore.open(path, experiment_id, digest, cells=digests) as store:
        for cell in cells:
            if cell["id"] in skip:
                continue
            out = folder / cell["folder"]
            run_cell(cell["_base"], cell["_model"], cell["seed"], limit, out)
            record_cell(store, cell["id"], cell["seed"], out)
    described = {
        "experiment": experiment_id,
        "description": description,
        "manifest": str(folder / "experiment.yaml"),
        "digest": digest,
        "files": {str(ROOT / p): _digest((ROOT / p).read_text()) for p in institutions},
        "command": f"govern run {folder / 'experiment.yaml'}",
        "govern_version": __version__,
        "simulated": all(m.startswith("sim/") for m in models),
        "cells": [{k: v for k, v in c.items() if not k.startswith("_")} for c in cells],
    }
    (folder / "experiment.json").write_text(json.dumps(described, indent=2), encoding="utf-8")
    return folder


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
