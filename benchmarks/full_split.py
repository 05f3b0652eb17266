"""The full GSM8K test split on the senate with sim/medium: wall time against the 60 s target.

Runs `govern run manifests/senate.yaml --task gsm8k` in-process exactly as the CLI
does (results written per item), and prints items and calls per second and the
share of the 60 s budget used.

    GOVERN_GSM8K=../shared/data/gsm8k/test.jsonl .venv/bin/python benchmarks/full_split.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from govern.run.runner import RunRequest, execute, prepare

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 60.0


def main() -> None:
    if not os.environ.get("GOVERN_GSM8K"):
        sys.exit("set GOVERN_GSM8K to the official test.jsonl (../shared/data/gsm8k/test.jsonl)")
    with tempfile.TemporaryDirectory() as folder:
        request = RunRequest(
            ROOT / "manifests" / "senate.yaml",
            task="gsm8k",
            model="sim/medium",
            concurrency=32,
            out=Path(folder) / "run",
        )
        run = prepare(request)
        summary = asyncio.run(execute(run))
    calls = (summary.calls_per_item or 0) * summary.n
    print(f"senate, sim/medium, {summary.n} items of {run.data.source}")
    print(
        f"  wall time      {summary.wall_seconds:7.2f} s  "
        f"({summary.wall_seconds / TARGET_SECONDS:.2f} of the {TARGET_SECONDS:.0f} s target)"
    )
    print(f"  items per s    {summary.n / summary.wall_seconds:7.1f}")
    print(f"  calls per s    {calls / summary.wall_seconds:7.1f}  ({calls:.0f} simulated calls)")
    print(f"  accuracy       {summary.accuracy_strict.value:.1%} strict (SIMULATED)")


if __name__ == "__main__":
    main()
