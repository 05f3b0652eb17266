"""Crashes and resume: a run killed with SIGKILL again and again is reported as crashed by
the audit, resumed from its folder, and ends with exactly the results of a run that was
never interrupted."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from govern.ledger.audit import audit
from tests.conftest import ROOT, TEST_KEYS, clean_environment, write
from tests.conftest import run_cli as govern

SAMPLE = ROOT / "tasks" / "gsm8k_sample.jsonl"
KILLS = 20


def slow_chancery(folder: Path, latency_ms: int = 60) -> Path:
    """The governed chancery (its ladder carries state from item to item), slowed down so a
    kill lands mid-run."""
    text = (ROOT / "manifests" / "chancery_governed.yaml").read_text()
    text = text.replace(
        "  sim/sloppy: {base: medium, malformed_rate: 0.3}\n",
        f"  sim/sloppy: {{base: medium, malformed_rate: 0.3, latency_ms: {latency_ms}}}\n"
        f"  sim/strong: {{latency_ms: {latency_ms}}}\n",
    )
    write(folder, "pyproject.toml", "")
    return write(folder, "chancery_slow.yaml", text)


def run_args(manifest: Path, out: Path) -> list[str]:
    return [str(manifest), "--data", str(SAMPLE), "--concurrency", "1", "--out", str(out)]


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "govern.cli", "run", *args],
        cwd=ROOT,
        env=clean_environment(**TEST_KEYS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def comparable(folder: Path) -> dict[str, dict[str, Any]]:
    """Results by item, without the timings that differ from run to run."""
    found = {}
    for line in (folder / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("latency")
        for turn in record["turns"]:
            for key in ("latency", "seq", "at"):  # a session's own: timing, ledger position
                turn.pop(key, None)
        found[record["id"]] = record
    return found


def ledger_size(folder: Path) -> int:
    path = folder / "ledger.jsonl"
    return path.stat().st_size if path.exists() else 0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    out = folder / "run"
    result = govern("run", *run_args(slow_chancery(folder, latency_ms=0), out), **TEST_KEYS)
    assert result.returncode == 0, result.stderr
    return out


def test_sigkill_at_20_random_moments_then_resume_gives_the_uninterrupted_results(
    uninterrupted: Path, tmp_path: Path
) -> None:
    manifest = slow_chancery(tmp_path)
    out = tmp_path / "run"
    chooser = random.Random(20261126)
    kills = 0
    process = start(*run_args(manifest, out))
    while kills < KILLS:  # wait for the ledger to move, then kill at a random moment
        before = ledger_size(out)
        deadline = time.monotonic() + 60
        while ledger_size(out) <= before and process.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.01)
        time.sleep(chooser.uniform(0.0, 0.6))  # about 0 to 2 items
        if process.poll() is not None:
            assert process.returncode == 0, process.communicate()[1]
            break  # it finished before this kill
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        verdict = audit(out)
        if verdict.intact:
            break  # killed while exiting, after its closing seal: it had finished
        kills += 1
        ledger = verdict.report["ledger"]
        assert not verdict.intact and ledger["damage"]["kind"] in ("torn", "unsealed"), ledger
        assert verdict.text[0].startswith("unsealed, intact up to entry ")
        process = start("--resume", str(out))
    assert kills == KILLS, f"the run finished after {kills} kills: slow it down"
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    final = audit(out)
    assert final.intact, final.text
    assert comparable(out) == comparable(uninterrupted)
    resumes = [
        json.loads(line)
        for line in (out / "ledger.jsonl").read_text().splitlines()
        if '"kind":"resume"' in line
    ]
    assert len(resumes) == KILLS
    # The kills landed at different points of the run, not all in start-up.
    assert len({r["body"]["finished"] for r in resumes}) >= 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["n"] == summary["n_planned"] == 40


def test_sigterm_seals_the_run_as_interrupted_and_resume_finishes_it(
    uninterrupted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    process = start(*run_args(slow_chancery(tmp_path), out))
    while ledger_size(out) < 20_000 and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and f"govern run --resume {out}" in stderr
    verdict = audit(out)
    assert verdict.report["ledger"]["closed_as"] == "interrupted" and not verdict.intact
    assert json.loads((out / "summary.json").read_text())["complete"] is False
    result = govern("run", "--resume", str(out), **TEST_KEYS)
    assert result.returncode == 0, result.stderr
    assert "resuming the run" in result.stderr
    assert audit(out).intact and comparable(out) == comparable(uninterrupted)


def test_a_complete_run_has_nothing_to_resume(uninterrupted: Path) -> None:
    result = govern("run", "--resume", str(uninterrupted), **TEST_KEYS)
    assert result.returncode == 0 and "nothing to resume" in result.stderr


def test_out_on_an_unfinished_run_resumes_it_and_refuses_another_manifest(
    tmp_path: Path,
) -> None:
    manifest = slow_chancery(tmp_path, latency_ms=0)
    out = tmp_path / "run"
    assert govern("run", *run_args(manifest, out), "--limit", "3", **TEST_KEYS).returncode == 0
    lines = (out / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    (out / "ledger.jsonl").write_bytes(b"".join(lines[:-6]))  # as if killed near the end,
    (out / "ledger.head").unlink()  # before the closing seal (the only one) was written
    other = govern("run", "manifests/senate.yaml", "--out", str(out), **TEST_KEYS)
    assert other.returncode == 2 and "holds a run of" in other.stderr
    again = govern("run", *run_args(manifest, out), "--limit", "3", **TEST_KEYS)
    assert again.returncode == 0, again.stderr
    assert "resuming the run" in again.stderr and audit(out).intact


def test_a_changed_manifest_or_damaged_ledger_cannot_be_resumed(tmp_path: Path) -> None:
    manifest = slow_chancery(tmp_path, latency_ms=0)
    out = tmp_path / "run"
    assert govern("run", *run_args(manifest, out), "--limit", "2", **TEST_KEYS).returncode == 0
    lines = (out / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    (out / "ledger.jsonl").write_bytes(b"".join(lines[:-3]))
    (out / "ledger.head").unlink()
    original = manifest.read_text()
    manifest.write_text(original.replace("malformed_rate: 0.3", "malformed_rate: 0.4"))
    changed = govern("run", "--resume", str(out), **TEST_KEYS)
    assert (
        changed.returncode == 2 and "the manifest changed since the run started" in changed.stderr
    )
    manifest.write_text(original)
    edited = next(n for n, line in enumerate(lines) if b'"event":"start"' in line)
    lines[edited] = lines[edited].replace(b'"event":"start"', b'"event":"begin"')
    (out / "ledger.jsonl").write_bytes(b"".join(lines[:-3]))
    damaged = govern("run", "--resume", str(out), **TEST_KEYS)
    assert damaged.returncode == 1 and "is damaged, so it cannot go on" in damaged.stderr
    assert "Traceback" not in changed.stderr + damaged.stderr


def test_resume_refuses_a_folder_that_is_no_run(tmp_path: Path) -> None:
    result = govern("run", "--resume", str(tmp_path), **TEST_KEYS)
    assert result.returncode == 2 and "is not a run folder" in result.stderr
    both = govern("run", "manifests/senate.yaml", "--resume", str(tmp_path), **TEST_KEYS)
    assert both.returncode == 2 and "not both" in both.stderr


def test_a_result_written_just_before_the_kill_is_redone_and_a_torn_line_cut(
    tmp_path: Path,
) -> None:
    """The kill came between an item's result line and its ledger entry, mid-way through
    writing the next entry: the orphan result is dropped, the torn line cut, the item redone."""
    manifest = slow_chancery(tmp_path, latency_ms=0)
    whole, out = tmp_path / "whole", tmp_path / "run"
    assert govern("run", *run_args(manifest, whole), "--limit", "3", **TEST_KEYS).returncode == 0
    assert govern("run", *run_args(manifest, out), "--limit", "3", **TEST_KEYS).returncode == 0
    lines = (out / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    last_end = max(n for n, line in enumerate(lines) if b'"event":"end"' in line)
    (out / "ledger.jsonl").write_bytes(b"".join(lines[:last_end]) + lines[last_end][:40])
    (out / "ledger.head").unlink()
    result = govern("run", "--resume", str(out), **TEST_KEYS)
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    recovery = next(e["body"] for e in entries if e["kind"] == "recovery")
    resume = next(e["body"] for e in entries if e["kind"] == "resume")
    assert recovery["torn_bytes"] == 40 and resume["dropped_results"] == 1
    assert resume["finished"] == 2 and audit(out).intact
    assert comparable(out) == comparable(whole)


def test_killed_before_the_ledgers_first_line_the_run_starts_afresh(tmp_path: Path) -> None:
    manifest = slow_chancery(tmp_path, latency_ms=0)
    whole, out = tmp_path / "whole", tmp_path / "run"
    assert govern("run", *run_args(manifest, whole), "--limit", "2", **TEST_KEYS).returncode == 0
    assert govern("run", *run_args(manifest, out), "--limit", "2", **TEST_KEYS).returncode == 0
    for name in ("ledger.jsonl", "ledger.head", "results.jsonl", "summary.json", "graph.mmd"):
        (out / name).unlink()
    (out / "ledger.jsonl").write_bytes(b"")  # created, nothing written yet
    result = govern("run", "--resume", str(out), **TEST_KEYS)
    assert result.returncode == 0, result.stderr
    assert audit(out).intact and comparable(out) == comparable(whole)
