"""`govern audit EXPERIMENT_DIR`: every cell's ledger, and every stored number tied to it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

EXPERIMENT = """\
kind: experiment
id: audited
institutions:
  - institutions/mongol.yaml
  - institutions/bare.yaml
models: [sim/weak]
tasks:
  - {name: gsm8k, limit: 3}
seeds: [0, 1]
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small experiment, run once to the end; tests audit copies of it."""
    project = tmp_path_factory.mktemp("project")
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (project / "institutions").mkdir()
    for name in ("mongol.yaml", "bare.yaml"):
        shutil.copy(ROOT / "institutions" / name, project / "institutions" / name)
    (project / "experiment.yaml").write_text(EXPERIMENT)
    out = project / "out"
    done = run_cli(
        "run",
        str(project / "experiment.yaml"),
        "--data",
        str(ROOT / "tasks" / "gsm8k_sample.jsonl"),
        "--out",
        str(out),
        "--workers",
        "1",
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def experiment(finished: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    return copy


def audited(folder: Path, *extra: str) -> tuple[int, str, str]:
    done = run_cli("audit", str(folder), *extra)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout, done.stderr


def store(folder: Path, sql: str, *parameters: object) -> None:
    db = sqlite3.connect(folder / "results.sqlite")
    db.execute(sql, parameters)
    db.commit()
    db.close()


def test_a_finished_experiment_verifies(experiment: Path) -> None:
    status, out, _ = audited(experiment)
    assert status == 0
    assert out.startswith("VERIFIED: 4 cells' ledgers intact; each of the 12 stored items")
    status, out, _ = audited(experiment, "--json")
    report = json.loads(out)
    assert status == 0 and report["intact"] and report["stored_items"] == 12
    assert {c["verdict"] for c in report["cells"]} == {"verified"}


def test_a_number_changed_in_the_store_is_found(experiment: Path) -> None:
    store(experiment, "UPDATE items SET correct_strict = 1 - correct_strict WHERE rowid = 2")
    status, out, _ = audited(experiment)
    assert status == 1 and out.startswith("NOT VERIFIED")
    assert "1 stored items differ from the results lines" in out


def test_a_record_changed_in_the_store_is_found(experiment: Path) -> None:
    db = sqlite3.connect(experiment / "results.sqlite")
    (record,) = db.execute("SELECT record FROM items WHERE rowid = 1").fetchone()
    changed = {**json.loads(record), "prediction_strict": "42"}
    db.execute("UPDATE items SET record = ? WHERE rowid = 1", (json.dumps(changed),))
    db.commit()
    db.close()
    status, out, _ = audited(experiment)
    assert status == 1 and "differ from the results lines" in out


def test_an_edited_results_line_damages_its_cell(experiment: Path) -> None:
    results = experiment / "cells" / "mongol.sim-weak.gsm8k.s0" / "results.jsonl"
    lines = results.read_text().splitlines()
    record = json.loads(lines[0])
    record["correct_strict"] = not record["correct_strict"]
    results.write_text("\n".join([json.dumps(record, ensure_ascii=False), *lines[1:]]) + "\n")
    status, out, _ = audited(experiment)
    assert status == 1
    assert "DAMAGED    mongol.sim-weak.gsm8k.s0" in out
    assert "mongol.sim-weak.gsm8k.s0: 1 stored items are not vouched for" in out


def test_a_deleted_cell_folder_is_missing(experiment: Path) -> None:
    shutil.rmtree(experiment / "cells" / "bare.sim-weak.gsm8k.s1")
    status, out, _ = audited(experiment)
    assert status == 1 and "MISSING    bare.sim-weak.gsm8k.s1" in out
    assert "damaged cells: bare.sim-weak.gsm8k.s1" in out


def test_rows_for_a_cell_the_experiment_lacks_are_found(experiment: Path) -> None:
    db = sqlite3.connect(experiment / "results.sqlite")
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute(
        "INSERT INTO items SELECT 'forged.sim-weak.gsm8k.s0', item, seed, outcome, "
        "correct_strict, correct_flexible, calls, prompt_tokens, completion_tokens, cost, "
        "latency, simulated, failure, line_sha256, record, recorded FROM items WHERE rowid = 1"
    )
    db.commit()
    db.close()
    status, out, _ = audited(experiment)
    assert status == 1 and "'forged.sim-weak.gsm8k.s0', a cell the experiment lacks" in out


def test_a_forged_ledger_head_in_the_store_is_found(experiment: Path) -> None:
    store(experiment, "UPDATE ledger_heads SET head = json_set(head, '$.root', ?)", "ab" * 32)
    status, out, _ = audited(experiment)
    assert status == 1 and "is not a verified seal of its ledgers" in out


@pytest.mark.parametrize(
    "description",
    [
        {"cells": [{"id": "../../etc"}]},
        {"cells": "all"},
        {"no": "cells"},
        [1, 2],
        {"cells": []},
        {"cells": [{"id": "bare.sim-weak.gsm8k.s0"}, {"id": "bare.sim-weak.gsm8k.s0"}]},
    ],
)
def test_a_hostile_experiment_json_fails_the_audit(experiment: Path, description: object) -> None:
    (experiment / "experiment.json").write_text(json.dumps(description))
    status, out, _ = audited(experiment)
    assert status == 1 and out.startswith("NOT VERIFIED: ") and "experiment.json" in out


def test_an_experiment_whose_cells_have_not_all_run_is_not_verified(experiment: Path) -> None:
    """As for one run: intact means every cell's ledger verified and complete."""
    for cell in (experiment / "cells").iterdir():
        shutil.rmtree(cell)
    store(experiment, "DELETE FROM items")
    store(experiment, "DELETE FROM ledger_heads")
    status, out, _ = audited(experiment)
    assert status == 1 and out.startswith("NOT VERIFIED: cells 4 not run; damaged cells: none")


def test_a_store_replaced_by_garbage_fails_the_audit(experiment: Path) -> None:
    (experiment / "results.sqlite").write_bytes(b"not a database" * 100)
    for extra in ("-wal", "-shm"):
        (experiment / f"results.sqlite{extra}").unlink(missing_ok=True)
    status, out, _ = audited(experiment)
    assert status == 1 and "STORE: cannot read" in out


def test_a_key_inside_the_experiment_folder_proves_nothing(experiment: Path) -> None:
    key = experiment / "keys.json"
    key.write_text("{}")
    status, _, err = audited(experiment, "--key-file", str(key))
    assert status == 2 and "inside the experiment folder under audit" in err


def test_one_run_options_are_refused_on_an_experiment(experiment: Path) -> None:
    status, _, err = audited(experiment, "--explain")
    assert status == 2 and "--explain: for one run's ledger" in err


def test_the_audit_writes_nothing(experiment: Path) -> None:
    before = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()}
    audited(experiment)
    after = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()}
    assert before == after


def test_a_sound_run_of_another_cell_in_a_cells_place_is_found(experiment: Path) -> None:
    """Both ledgers verify, and the store's rows follow the swap: the run folder's own bound
    request still says whose run it is."""
    cells = experiment / "cells"
    a, b = cells / "mongol.sim-weak.gsm8k.s0", cells / "mongol.sim-weak.gsm8k.s1"
    a.rename(cells / "swap")
    b.rename(a)
    (cells / "swap").rename(b)
    db = sqlite3.connect(experiment / "results.sqlite")
    db.execute("PRAGMA foreign_keys=OFF")
    for old, new in ((a.name, "swap"), (b.name, a.name), ("swap", b.name)):
        db.execute("UPDATE items SET cell = ? WHERE cell = ?", (new, old))
        db.execute("UPDATE ledger_heads SET cell = ? WHERE cell = ?", (new, old))
    db.commit()
    db.close()
    status, out, _ = audited(experiment)
    assert status == 1
    assert f"DAMAGED    {a.name}" in out and f"DAMAGED    {b.name}" in out
    assert f"is the run of '{b.name}', not of this cell" in out


@pytest.mark.parametrize("section", ["lots", "oversight"])
def test_a_draw_the_seed_does_not_give_damages_its_cell(section: str) -> None:
    """A cell whose ledger is intact (re-keyed by a holder of the keys) but one of whose
    draws does not follow from the run's seed is damaged, not merely incomplete."""
    from govern.experiments.audit import CellAudit, _judge
    from govern.ledger.audit import AuditResult

    report = {
        "ledger": {"verified": True, "damage": None},
        "files": {"problems": []},
        section: {"checked": 3, "problems": ["entry 10: a draw that does not follow"]},
    }
    found = CellAudit("venice.sim-strong.gsm8k.s0", "not run")
    _judge(found, Path("cells/venice"), AuditResult(False, report, ["NOT INTACT"]))
    assert found.verdict == "damaged"
    clean = {**report, section: {"checked": 3, "problems": []}}
    found = CellAudit("venice.sim-strong.gsm8k.s0", "not run")
    _judge(found, Path("cells/venice"), AuditResult(True, clean, ["intact"]))
    assert found.verdict == "verified"
