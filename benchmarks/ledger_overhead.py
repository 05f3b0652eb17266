"""Ledger overhead on a GSM8K simulator run: the senate with its file ledger against the
same run logging to memory, alternating in one process.

Both sides run the Controller, the Oracle and every check; the difference is the
ledger file: canonical encoding, HMAC chaining, a flushed line per entry, Merkle
leaves, a signed seal every 1,000 entries and fsync at every seal. Target: under 10%.

    GOVERN_GSM8K=../shared/data/gsm8k/test.jsonl .venv/bin/python benchmarks/ledger_overhead.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path

from govern.ledger.memory import MemoryLedger
from govern.run.runner import RunRequest, execute, prepare

ROOT = Path(__file__).resolve().parent.parent


class MemoryRunLedger(MemoryLedger):
    """The in-memory side's ledger: the same entries, kept in a list; closing is free."""

    run = "in-memory"

    def close(self, reason: str = "complete") -> None:
        self.append("seal", "govern", {"closing": True, "reason": reason})


def timed_run(folder: Path, limit: int | None, in_memory: bool) -> tuple[float, int]:
    run = prepare(
        RunRequest(
            ROOT / "manifests" / "senate.yaml",
            task="gsm8k",
            limit=limit,
            concurrency=32,
            out=folder,
        )
    )
    if in_memory:
        run.ledger.close()  # the file stays as prepared; this side logs to memory instead
        run.ledger = run.context.controller.ledger = MemoryRunLedger()
    summary = asyncio.run(execute(run))
    entries = (
        len(run.context.controller.ledger.entries)
        if in_memory
        else len((folder / "ledger.jsonl").read_bytes().splitlines())
    )
    return summary.wall_seconds, entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="items (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("GOVERN_LEDGER_KEY", "be" * 32)  # throwaway keys for the benchmark
    os.environ.setdefault("GOVERN_SIGNING_KEY", "bf" * 32)
    with_file, in_memory, entries = [], [], 0
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            seconds, entries = timed_run(Path(folder) / f"file{round_}", args.limit, False)
            with_file.append(seconds)
            in_memory.append(timed_run(Path(folder) / f"mem{round_}", args.limit, True)[0])
    file_s, memory_s = statistics.median(with_file), statistics.median(in_memory)
    print(
        f"senate, sim/medium, {args.limit or 'all'} items, {entries:,} ledger entries per run, "
        f"{args.rounds} rounds (medians)"
    )
    print(f"  with the ledger file   {file_s:7.2f} s")
    print(f"  ledger in memory       {memory_s:7.2f} s")
    print(f"  overhead               {file_s / memory_s - 1:7.1%}  (target < 10%)")


if __name__ == "__main__":
    main()
