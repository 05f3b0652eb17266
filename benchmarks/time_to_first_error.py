"""Time to first error: how long `govern run` takes to refuse bad input, against `python -c pass`.

A mistake in the command should cost the user no more than the start-up of Python
and the check itself: the run must fail before it imports langgraph or litellm.
The commands run alternately so that machine noise hits all alike; the script
prints each one's median, its ratio to `python -c pass`, and its exit status.
Target: every bad input refused in under 1 s.

`govern` runs as `python -m govern.cli` from this checkout, in a clean
environment (no API keys, no GSM8K location, a throw-away ledger key and cache).

    .venv/bin/python benchmarks/time_to_first_error.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.0


def cases(scratch: Path) -> dict[str, list[str]]:
    invalid = scratch / "invalid.yaml"
    invalid.write_text("id: broken\ninstitution: {}\n", encoding="utf-8")
    taken = scratch / "taken"
    taken.write_text("not a folder\n", encoding="utf-8")
    run = ["run", "manifests/senate.yaml", "--task", "gsm8k"]
    return {
        "nonexistent manifest": ["run", str(scratch / "absent.yaml"), "--task", "gsm8k"],
        "invalid manifest": ["run", str(invalid), "--task", "gsm8k"],
        "unknown --task": ["run", "manifests/senate.yaml", "--task", "nope"],
        "--limit 0": [*run, "--limit", "0"],
        "missing --data file": [*run, "--data", str(scratch / "absent.jsonl")],
        "--out on an existing file": [*run, "--out", str(taken)],
    }


def elapsed(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env.pop("GOVERN_GSM8K", None)
        env.update(
            GOVERN_LEDGER_KEY="5e" * 32,  # throw-away keys: never the user's key file
            GOVERN_SIGNING_KEY="a7" * 32,
            XDG_CACHE_HOME=str(scratch / "cache"),
            XDG_CONFIG_HOME=str(scratch / "config"),
        )
        govern = [sys.executable, "-m", "govern.cli"]
        commands = {"python -c pass": [sys.executable, "-c", "pass"]}
        commands |= {name: [*govern, *args] for name, args in cases(scratch).items()}
        times: dict[str, list[float]] = {name: [] for name in commands}
        status: dict[str, int] = {}
        for _ in range(runs):
            for name, command in commands.items():
                seconds, status[name] = elapsed(command, env)
                times[name].append(seconds)
    base = statistics.median(times["python -c pass"])
    print(f"{'govern run on':<28} {'median s':>9} {'ratio to python':>16} {'exit':>5}")
    worst = 0.0
    for name, samples in times.items():
        median = statistics.median(samples)
        if name != "python -c pass":
            worst = max(worst, median)
        print(f"{name:<28} {median:>9.3f} {median / base:>15.1f}x {status[name]:>5}")
    verdict = "meets" if worst < TARGET_S else "MISSES"
    print(f"slowest refusal {worst:.3f} s {verdict} the {TARGET_S:.0f} s target ({runs} runs each)")


if __name__ == "__main__":
    main()
