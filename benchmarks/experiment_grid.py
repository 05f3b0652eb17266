"""The whole shipped grid on the full GSM8K test split: wall time against the 20-minute target.

Runs `govern run manifests/compare_institutions.yaml` (9 institutions x 3 simulated models x
3 seeds = 81 cells x 1,319 items = 106,839 item runs) exactly as a user does, in a
subprocess, with every cell's ledger file, results.jsonl and the SQLite store on and one
worker process per core; then `govern audit` on the experiment folder. Prints the wall
time, items per second, the share of the target, the folder's size and the audit's time.

    GOVERN_GSM8K=../shared/data/gsm8k/test.jsonl .venv/bin/python benchmarks/experiment_grid.py

``--out DIR`` keeps the experiment (default: a temporary folder, removed at the end);
``--workers N`` as for `govern run`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 20 * 60
GRID = ROOT / "manifests" / "compare_institutions.yaml"


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="keep the experiment here")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    args = parser.parse_args()
    data = os.environ.get("GOVERN_GSM8K")
    if not data:
        sys.exit("set GOVERN_GSM8K to the official test.jsonl (../shared/data/gsm8k/test.jsonl)")
    scratch = None if args.out else Path(tempfile.mkdtemp(prefix="govern-grid-"))
    out = args.out or scratch / "grid"  # type: ignore[operator]
    govern = [sys.executable, "-m", "govern.cli"]
    command = [*govern, "run", str(GRID), "--data", data, "--out", str(out)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    try:
        clock = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - clock
        if done.returncode != 0:
            sys.exit(f"govern run failed ({done.returncode}):\n{done.stderr[-4000:]}")
        db = sqlite3.connect(out / "results.sqlite")
        items, calls = db.execute("SELECT items, calls FROM totals").fetchone()
        db.close()
        clock = time.perf_counter()
        audit = subprocess.run(
            [*govern, "audit", str(out)], cwd=ROOT, capture_output=True, text=True
        )
        audit_wall = time.perf_counter() - clock
        print(f"compare_institutions.yaml on {data}: SIMULATED models")
        print(f"  items run      {items:,} ({calls:,} simulated calls)")
        print(
            f"  wall time      {wall:8.1f} s  ({wall / TARGET_SECONDS:.2f} of the 20-minute target)"
        )
        print(f"  items per s    {items / wall:8.1f}")
        print(f"  folder size    {size_of(out) / 1e9:8.2f} GB")
        verdict = audit.stdout.splitlines()[0] if audit.stdout else audit.stderr.strip()
        print(f"  audit          {audit_wall:8.1f} s, exit {audit.returncode}: {verdict[:90]}")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
