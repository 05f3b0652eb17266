"""`govern run` as a user runs it: offline, labelled, interruptible, with clear errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, clean_environment, write
from tests.conftest import run_cli as govern

OFFICIAL = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


def test_run_without_data_uses_the_sample_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = govern(
        "run", "manifests/senate.yaml", "--task", "gsm8k", "--limit", "4", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "This is NOT the GSM8K benchmark" in result.stderr
    assert "SIMULATED run" in result.stdout and "not LLM results" in result.stdout
    assert f"results in {out}" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "events.jsonl",
        "graph.mmd",
        "ledger.head",
        "ledger.jsonl",
        "manifest.json",
        "results.jsonl",
        "summary.json",
    ]
    audited = govern("audit", str(out))
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert audited.stdout.startswith("intact: ")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["simulated"] and not summary["benchmark"] and summary["n"] == 4


@pytest.mark.skipif(not OFFICIAL.is_file(), reason="the shared GSM8K test split is not here")
def test_run_on_the_official_split_through_the_environment(tmp_path: Path) -> None:
    result = govern(
        "run",
        "institutions/bare.yaml",
        "--task",
        "gsm8k",
        "--limit",
        "3",
        "--model",
        "sim/strong",
        "--out",
        str(tmp_path / "r"),
        GOVERN_GSM8K=str(OFFICIAL),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["benchmark"] is True and "sha256 verified" in summary["data_source"]
    assert summary["models"] == {"solver": "sim/strong"}


def test_ctrl_c_keeps_finished_items_and_marks_the_summary_incomplete(tmp_path: Path) -> None:
    manifest = (ROOT / "manifests" / "senate.yaml").read_text()
    slow = write(tmp_path, "slow.yaml", manifest + "simulator:\n  sim/medium: {latency_ms: 20}\n")
    write(tmp_path, "pyproject.toml", "")
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "govern.cli",
            "run",
            str(slow),
            "--limit",
            "40",
            "--concurrency",
            "1",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if results.exists() and len(results.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    kept = [json.loads(line) for line in results.read_text().splitlines()]
    assert summary["complete"] is False and summary["n"] == len(kept) >= 2
    assert summary["n_planned"] == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "nope"], "unknown task 'nope'; known tasks: cournot, gsm8k"),
        (["--model", "sim/gigantic"], "unknown simulated model 'sim/gigantic'"),
        (
            ["--role-model", "emperor=sim/weak"],
            "--role-model names no role of roman_senate: emperor",
        ),
        (["--role-model", "consul"], "expected ROLE=MODEL"),
        (["--data", "/nonexistent/test.jsonl"], "GSM8K data from --data not found"),
    ],
)
def test_run_usage_errors_are_clear(args: list[str], message: str) -> None:
    result = govern("run", "manifests/senate.yaml", "--task", "gsm8k", *args)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_real_model_without_its_key_fails_before_the_run() -> None:
    result = govern("run", "manifests/senate.yaml", "--model", "openai/gpt-4o-mini")
    assert result.returncode == 2
    assert "needs OPENAI_API_KEY" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("policy", ["never", "always"])
def test_the_ledger_fsync_policy_is_an_option(policy: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = govern(
        "run",
        "institutions/bare.yaml",
        "--task",
        "gsm8k",
        "--limit",
        "2",
        "--fsync",
        policy,
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert govern("audit", str(out)).returncode == 0
