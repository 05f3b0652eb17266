"""The experiment's results store: resume after SIGKILL, concurrent openers, refused files,
digest mismatches, and properties of recording (one row per key, exact round-trips)."""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govern.experiments.store import (
    SCHEMA_VERSION,
    ResultsStore,
    StoreBusy,
    StoreCorrupt,
    StoreError,
    StoreMismatch,
    StoreVersionError,
)
from govern.ledger.binding import line_digest

ROOT = Path(__file__).resolve().parent.parent
WRITER = Path(__file__).with_name("store_crash_writer.py")
sys.path.insert(0, str(WRITER.parent))
import store_crash_writer as crash  # noqa: E402


def stored_form(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the store keeps it: without its turns."""
    return {k: v for k, v in record.items() if k != "turns"}


ITEMS = 1000  # per (cell, seed): 4,000 items in all
TIMEOUT = 30.0


def _env() -> dict[str, str]:
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _writer(path: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(),
        **popen,
    )


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:  # a thread, so that waiting for output can time out
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _run_and_kill(path: Path, after: int) -> list[tuple[str, int, str]]:
    """Start the writer and SIGKILL it at a random moment once it has committed AFTER items
    more; the items it said were committed."""
    process = _writer(path, "--items", str(ITEMS), "--every", "25", "--pace", "0.001")
    lines = _lines(process)
    said: list[tuple[str, int, str]] = []
    deadline = time.monotonic() + TIMEOUT
    committed = 0
    try:
        while committed < after:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                break
            cell, seed, item, count = line.split()
            said.append((cell, int(seed), item))
            committed = int(count)
        time.sleep(random.uniform(0.0, 0.01))  # not just after a print: a random moment
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    while (line := lines.get(timeout=10)) is not None:
        parts = line.split()
        said.append((parts[0], int(parts[1]), parts[2]))
    assert process.stderr is not None
    assert said, process.stderr.read()
    return said


def _finish(path: Path) -> None:
    process = _writer(path, "--items", str(ITEMS))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr


def _contents(path: Path) -> dict[tuple[str, int, str], dict[str, Any]]:
    """Every stored item, checking that no key appears twice."""
    seen: dict[tuple[str, int, str], dict[str, Any]] = {}
    with ResultsStore.open(path, crash.EXPERIMENT, crash.DIGEST, cells=crash.CELLS) as store:
        for row in store.records():
            key = (row.cell, row.seed, row.item)
            assert key not in seen, f"{key} stored twice"
            seen[key] = row.record
            assert row.line_sha256 == crash.digest(*key)
    return seen


def _integrity(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


# -- crash safety ----------------------------------------------------------------------


def test_sigkill_part_way_then_resume_equals_a_run_never_interrupted(tmp_path: Path) -> None:
    reference = tmp_path / "reference.sqlite"
    _finish(reference)
    expected = _contents(reference)
    assert len(expected) == len(crash.CELLS) * len(crash.SEEDS) * ITEMS

    path = tmp_path / "interrupted.sqlite"
    for after in (600, 1800):  # killed twice, the second time while resuming
        said = _run_and_kill(path, after)
        assert _integrity(path) == "ok"
        stored = _contents(path)  # opens cleanly, each key once
        assert set(said) <= set(stored), "an item said committed was lost"
        assert all(stored[key] == expected[key] for key in stored)
        assert len(stored) < len(expected), "the kill came after the writer had finished"
    _finish(path)
    assert _integrity(path) == "ok"
    assert _contents(path) == expected


def test_a_finished_run_again_records_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    _finish(path)
    before = _contents(path)
    process = _writer(path, "--items", str(ITEMS), "--every", "1")
    out, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert out == ""  # every item skipped
    assert _contents(path) == before


# -- two processes at once -------------------------------------------------------------


def test_two_writers_at_once_store_each_item_once(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    writers = [_writer(path, "--items", "400", "--every", "100000") for _ in range(2)]
    for process in writers:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    assert _integrity(path) == "ok"
    stored = _contents(path)
    assert set(stored) == set(crash.grid(400))
    assert all(stored[key] == stored_form(crash.record(*key)) for key in stored)


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    """A store whose write lock another process holds for 3 seconds."""
    path = tmp_path / "store.sqlite"
    process = _writer(path, "--hold", "3")
    lines = _lines(process)
    assert lines.get(timeout=TIMEOUT) == "locked\n"
    yield path
    process.kill()
    process.wait(timeout=10)


def test_a_writer_that_cannot_get_the_lock_says_so(locked: Path) -> None:
    with ResultsStore.open(locked, crash.EXPERIMENT, crash.DIGEST, timeout=0.2) as store:
        assert store.finished("senate--sim-weak", 0) == set()  # reading is not blocked
        with pytest.raises(StoreBusy, match="locked by another process"):
            store.record_item("senate--sim-weak", 0, crash.record("senate--sim-weak", 0, "x"))
    assert _integrity(locked) == "ok"


def test_a_writer_waits_for_the_lock_within_its_timeout(locked: Path) -> None:
    start = time.monotonic()
    with ResultsStore.open(locked, crash.EXPERIMENT, crash.DIGEST, timeout=TIMEOUT) as store:
        assert store.record_item("senate--sim-weak", 0, crash.record("senate--sim-weak", 0, "x"))
    assert time.monotonic() - start > 1.0  # it waited for the holder
    assert _integrity(locked) == "ok"


# -- files that are not a store ----------------------------------------------------------


def _refused(path: Path, error: type[StoreError], match: str) -> None:
    before = path.read_bytes()
    listing = sorted(path.parent.iterdir())
    with pytest.raises(error, match=match):
        ResultsStore.open(path, "e", "d")
    assert path.read_bytes() == before, "the refused file was changed"
    assert sorted(path.parent.iterdir()) == listing, "files were created beside it"


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    path.write_text('{"id": "not a database"}\n' * 100)
    _refused(path, StoreCorrupt, "not an SQLite database")


def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    _refused(path, StoreCorrupt, "not a govern results store")


def test_a_store_of_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    ResultsStore.open(path, "e", "d").close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.execute("PRAGMA journal_mode=DELETE")  # fold the log in: one file to compare
    db.close()
    _refused(path, StoreVersionError, f"schema version {SCHEMA_VERSION + 1}.*newer govern")


def test_a_damaged_store_raises_store_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    with ResultsStore.open(path, "e", "d", cells={"c": "x"}) as store:
        for n in range(300):
            store.record_item("c", 0, {"id": f"i{n}", "outcome": "completed", "t": "x" * 500})
    data = bytearray(path.read_bytes())
    assert not path.with_name(path.name + "-wal").exists()  # closed: all in the main file
    data[4096 * 3 : 4096 * 6] = b"\xff" * (4096 * 3)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt, match="damaged"), ResultsStore.open(path, "e", "d") as s:
        list(s.records())


def test_a_folder_given_as_the_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder"):
        ResultsStore.open(tmp_path, "e", "d")


READ_ONLY = """
import sys
from govern.experiments.store import ResultsStore, StoreError
try:
    ResultsStore.open(sys.argv[1], "e", "d")
except StoreError as error:
    print(type(error).__name__, error)
else:
    print("opened")
"""


def _unprivileged() -> tuple[str, dict[str, int]]:
    """A Python and the user to run it as, so that file permissions apply (root ignores
    them): as root, nobody with a system Python it can reach (the store needs only the
    standard library and govern's own package)."""
    if os.geteuid() != 0:
        return sys.executable, {}
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            probe = subprocess.run(
                [python, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                capture_output=True,
                user=65534,
                group=65534,
                cwd="/",
            )
        except OSError:  # nobody cannot reach it
            continue
        if probe.returncode == 0:
            return python, {"user": 65534, "group": 65534}
    pytest.skip("running as root, and no Python >= 3.11 that user nobody can run")


@pytest.mark.parametrize("exists", [False, True])
def test_a_store_in_a_read_only_folder_is_refused_clearly(exists: bool) -> None:
    """Run as an unprivileged user (root ignores permissions), in a folder it cannot write."""
    python, user = _unprivileged()
    folder = Path(tempfile.mkdtemp(prefix="govern-store-ro-"))
    try:
        path = folder / "results.sqlite"
        if exists:
            ResultsStore.open(path, "e", "d").close()
            path.chmod(0o644)
        folder.chmod(0o555)
        before = path.read_bytes() if exists else None
        result = subprocess.run(
            [python, "-c", READ_ONLY, str(path)],
            capture_output=True,
            text=True,
            cwd="/",
            env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")},
            timeout=60,
            **user,  # type: ignore[call-overload]
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("StoreError"), result.stdout
        assert "is read-only" in result.stdout and str(folder) in result.stdout
        assert (path.read_bytes() if exists else None) == before
        assert sorted(p.name for p in folder.iterdir()) == (["results.sqlite"] if exists else [])
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


# -- digests and force_new -------------------------------------------------------------


def test_a_changed_manifest_is_refused_saying_what_changed(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    ResultsStore.open(path, "e", "d1", cells={"a": "x", "b": "y"}).close()
    with pytest.raises(StoreMismatch) as caught:
        ResultsStore.open(path, "e", "d2", cells={"a": "x2", "c": "z"})
    message = str(caught.value)
    assert "d1 (stored) != d2 (given)" in message
    assert "a (x -> x2)" in message
    assert "cells added: c" in message and "no longer in the manifest: b" in message
    assert "--force-new" in message
    with pytest.raises(StoreMismatch, match="experiment id 'e' \\(stored\\)"):
        ResultsStore.open(path, "other", "d1")
    with pytest.raises(StoreMismatch, match="a \\(x -> x2\\)"):  # same digest, changed cell
        ResultsStore.open(path, "e", "d1", cells={"a": "x2"})


def test_force_new_keeps_the_old_store_aside(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    with ResultsStore.open(path, "e", "d1", cells={"a": "x"}) as store:
        store.record_item("a", 0, {"id": "i", "outcome": "completed"})
    with ResultsStore.open(path, "e", "d2", cells={"a": "y"}, force_new=True) as store:
        assert store.count() == 0 and store.experiment.digest == "d2"
        aside = store.replaced
    assert aside is not None and aside.parent == tmp_path
    with ResultsStore.open(aside, "e", "d1") as old:
        assert old.finished("a", 0) == {"i"}
    with ResultsStore.open(path, "e", "d2") as store:  # the fresh one resumes as usual
        assert [c.digest for c in store.cells()] == ["y"]


def test_the_same_digest_resumes_and_adds_new_cells(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    with ResultsStore.open(path, "e", "d", cells={"a": "x"}) as store:
        store.record_item("a", 3, {"id": "i", "outcome": "completed"})
    with ResultsStore.open(path, "e", "d", cells={"a": "x", "b": "y"}) as store:
        assert store.finished("a", 3) == {"i"}
        assert [(c.id, c.status) for c in store.cells()] == [("a", "pending"), ("b", "pending")]


# -- the API ---------------------------------------------------------------------------


def test_failures_are_listed_and_replaced_by_their_retries(tmp_path: Path) -> None:
    with ResultsStore.open(tmp_path / "r.sqlite", "e", "d", cells={"c": "x"}) as store:
        store.record_item("c", 0, {"id": "ok", "outcome": "completed", "cost": None})
        store.record_item("c", 0, {"id": "bad", "outcome": "error", "errors": ["HTTP 500"]})
        store.record_item("c", 1, {"id": "bad", "outcome": "error", "errors": []})
        assert store.failed("c", 0) == {"bad"}
        assert store.get("c", 0, "bad").failure == "HTTP 500"  # type: ignore[union-attr]
        assert store.get("c", 0, "ok").cost is None  # type: ignore[union-attr]
        assert not store.replace_failed("c", 0, {"id": "ok", "outcome": "error"})  # kept
        assert store.replace_failed("c", 0, {"id": "bad", "outcome": "completed"})
        assert store.failed("c", 0) == set() and store.failed("c", 1) == {"bad"}
        assert store.finished("c", 0) == {"ok", "bad"} and store.count() == 3
        assert store.replace_failed("c", 0, {"id": "new", "outcome": "completed"})  # not stored
        assert store.finished("c", 0) == {"ok", "bad", "new"}


def test_cells_status_folder_and_ledger_heads(tmp_path: Path) -> None:
    with ResultsStore.open(tmp_path / "r.sqlite", "e", "d", cells={"c": "x"}) as store:
        store.set_cell_status("c", "running", folder=tmp_path / "runs" / "c")
        store.set_cell_status("c", "finished")
        (cell,) = store.cells()
        assert (cell.status, cell.folder) == ("finished", tmp_path / "runs" / "c")
        with pytest.raises(ValueError, match="cell status"):
            store.set_cell_status("c", "done")  # type: ignore[arg-type]
        with pytest.raises(KeyError):
            store.set_cell_status("nope", "running")
        with pytest.raises(KeyError, match="add it first"):
            store.record_item("nope", 0, {"id": "i", "outcome": "completed"})
        assert store.ledger_head("c") is None
        store.record_ledger_head("c", {"tree_size": 10, "root": "aa"})
        store.record_ledger_head("c", {"tree_size": 20, "root": "bb"})
        assert store.ledger_head("c") == {"tree_size": 20, "root": "bb"}
        assert len(store.ledger_heads("c")) == 2
    with pytest.raises(StoreError, match="closed"):
        store.finished("c", 0)


def test_the_store_keeps_the_results_lines_digest_and_the_record_without_turns(
    tmp_path: Path,
) -> None:
    """The digest is the one the ledger binds for results.jsonl's line; the turns stay there."""
    record = crash.record("senate--sim-weak", 0, "gsm8k/test/0001")
    assert record["turns"]
    with ResultsStore.open(tmp_path / "r.sqlite", "e", "d", cells={"c": "x"}) as store:
        store.record_item("c", 0, record)
        (row,) = store.records()
    line = json.dumps(record, ensure_ascii=False).encode("utf-8")
    assert row.line_sha256 == line_digest(line)
    assert row.record == stored_form(record)


def test_the_totals_count_every_call_ever_recorded_and_the_items_stored(
    tmp_path: Path,
) -> None:
    records = [crash.record("c", 0, f"i{n}") for n in range(60)]
    retried = [
        {**r, "outcome": "completed", "calls": 1} for r in records if r["outcome"] == "error"
    ]
    with ResultsStore.open(tmp_path / "r.sqlite", "e", "d", cells={"c": "x"}) as store:
        for record in records:
            store.record_item("c", 0, record)
        store.record_item("c", 0, records[0])  # a duplicate counts once
        for record in retried:
            assert store.replace_failed("c", 0, record)
        spend = store.spend()
    paid = records + retried  # a failure replaced by its retry stays paid for
    assert retried and spend.items == len(records) == store_count(tmp_path / "r.sqlite")
    assert spend.calls == sum(r["calls"] for r in paid)
    assert spend.tokens == sum(r["prompt_tokens"] + r["completion_tokens"] for r in paid)
    assert spend.cost == pytest.approx(sum(r["cost"] or 0 for r in paid))
    assert spend.unknown_cost == sum(r["cost"] is None for r in paid)


def store_count(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM items").fetchone()[0]
    finally:
        db.close()


@pytest.mark.parametrize(
    "record",
    [{"outcome": "completed"}, {"id": 7}, {"id": "i", "calls": 2**70}, {"id": "i", "cost": "1"}],
)
def test_a_malformed_record_is_refused(tmp_path: Path, record: dict[str, Any]) -> None:
    with ResultsStore.open(tmp_path / "r.sqlite", "e", "d", cells={"c": "x"}) as store:
        with pytest.raises(ValueError):
            store.record_item("c", 0, record)
        assert store.count() == 0


# -- properties ------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: large ints go through the JSON text whole
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 2), st.sampled_from("pqrst"))
SCALARS = {"calls", "prompt_tokens", "completion_tokens", "cost", "latency", "outcome", "turns"}
OUTCOMES = st.sampled_from(["completed", "error", "no_answer"])


def _fresh(cells: dict[str, str]) -> tuple[ResultsStore, Path]:
    folder = Path(tempfile.mkdtemp(prefix="govern-store-"))
    return ResultsStore.open(folder / "r.sqlite", "e", "d", cells=cells), folder


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(KEYS, OUTCOMES, JSON), max_size=40))
def test_duplicates_leave_one_row_per_key_the_first(
    calls: list[tuple[tuple[str, int, str], str, Any]],
) -> None:
    store, folder = _fresh({"a": "x", "b": "y"})
    try:
        first: dict[tuple[str, int, str], dict[str, Any]] = {}
        for (cell, seed, item), outcome, payload in calls:
            record = {"id": item, "outcome": outcome, "payload": payload}
            assert store.record_item(cell, seed, record) == ((cell, seed, item) not in first)
            first.setdefault((cell, seed, item), record)
        rows = list(store.records())
        assert len(rows) == len(first) == store.count()
        assert {(r.cell, r.seed, r.item): r.record for r in rows} == first
        for cell in ("a", "b"):
            for seed in range(3):
                keys = {i for (c, s, i) in first if (c, s) == (cell, seed)}
                assert store.finished(cell, seed) == keys
                errors = {i for i in keys if first[cell, seed, i]["outcome"] == "error"}
                assert store.failed(cell, seed) == errors
            assert [r.record for r in store.records(cell)] == [
                r for (c, _, _), r in first.items() if c == cell
            ]
    finally:
        store.close()
        shutil.rmtree(folder)


@settings(max_examples=100, deadline=None)
@given(
    st.text(min_size=1),
    st.integers(-(2**63), 2**63 - 1),
    st.dictionaries(st.text().filter(lambda k: k not in SCALARS), JSON, max_size=6),
    st.integers(),
)
def test_records_round_trip_exactly(item: str, seed: int, extra: dict[str, Any], big: int) -> None:
    record = {**extra, "id": item, "outcome": "completed", "big": big, "nested": [[big, "é"]]}
    store, folder = _fresh({"cell ✓": "x"})
    try:
        assert store.record_item("cell ✓", seed, record)
        (row,) = store.records("cell ✓")
        assert row.record == record and json.dumps(row.record) == json.dumps(record)
        assert (row.cell, row.seed, row.item) == ("cell ✓", seed, item)
        assert store.finished("cell ✓", seed) == {item}
    finally:
        store.close()
        shutil.rmtree(folder)
