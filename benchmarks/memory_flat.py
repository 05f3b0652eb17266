"""A run's peak memory against its number of items: N and 4N items, one process.

The senate on the simulator (sim/medium, no latency; 32 items in flight), on
GSM8K-shaped problems (the project's sample, repeated), run as `govern run` runs
it: `execute()` with its ledger file, results.jsonl and summary.json. Peak memory
is tracemalloc's peak of Python allocations during each run (reset before it).
The reference side keeps every record as it finishes (through ``on_item``), which
is what a run did before its summary was tallied item by item.

    .venv/bin/python benchmarks/memory_flat.py [--items 250]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from govern.run.runner import RunRequest, execute, prepare

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 32


def write_items(path: Path, count: int) -> Path:
    sample = (ROOT / "tasks" / "gsm8k_sample.jsonl").read_text().splitlines()
    path.write_text("\n".join(sample[i % len(sample)] for i in range(count)) + "\n")
    return path


def peak_of_run(folder: Path, items: int, keep: bool) -> tuple[float, float, int]:
    """(peak MB during the run, seconds, results bytes)."""
    data = write_items(folder / f"items{items}.jsonl", items)
    out = folder / f"run-{items}-{'keep' if keep else 'stream'}"
    request = RunRequest(
        ROOT / "manifests" / "senate.yaml",
        task="gsm8k",
        data=data,
        concurrency=CONCURRENCY,
        out=out,
    )
    run = prepare(request)
    kept: list[dict[str, Any]] = []
    tracemalloc.reset_peak()
    start = time.perf_counter()
    summary = asyncio.run(execute(run, on_item=kept.append if keep else None))
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    assert summary.n == items
    return peak, seconds, (out / "results.jsonl").stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=250, help="N (the other run has 4N)")
    args = parser.parse_args()
    os.environ.setdefault("GOVERN_LEDGER_KEY", "be" * 32)  # throwaway keys for the benchmark
    os.environ.setdefault("GOVERN_SIGNING_KEY", "bf" * 32)
    n = args.items
    tracemalloc.start()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        peak_of_run(Path(folder), 40, keep=False)  # warm up: imports, compilation, caches
        for keep in (False, True):
            for items in (n, 4 * n):
                rows.append((keep, items, *peak_of_run(Path(folder), items, keep)))
    tracemalloc.stop()
    print(
        f"senate on the simulator, {CONCURRENCY} items in flight; peak of Python allocations "
        "during each run (tracemalloc)"
    )
    print(f"{'side':<44} {'items':>6} {'peak MB':>9} {'results MB':>11} {'seconds':>8}")
    peaks: dict[tuple[bool, int], float] = {}
    for keep, items, peak, seconds, size in rows:
        side = "a run keeping every record (before)" if keep else "a run (records streamed)"
        peaks[keep, items] = peak
        print(f"{side:<44} {items:>6} {peak:9.1f} {size / 2**20:11.1f} {seconds:8.1f}")
    ratio = peaks[False, 4 * n] / peaks[False, n]
    per_item = (peaks[True, 4 * n] - peaks[True, n]) / (3 * n) * 1024
    print(f"run: peak at 4N / peak at N = {ratio:.2f}x (target: flat, about 1.0x)")
    print(f"keeping every record: {per_item:.0f} KB more per item")


if __name__ == "__main__":
    main()
