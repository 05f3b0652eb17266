"""Write cost of the experiment's results store against appending JSON lines, in one run.

The same records are written both ways, interleaved in blocks (in random order per block)
in one process: to a ResultsStore (SQLite, WAL, one transaction per item, the record's
columns extracted and the JSON line kept), and as results.jsonl is written (json.dumps,
one write and one flush per line: the fair baseline, since a run already pays it). Two
record sizes: "small" (a record without its turns, about 600 B) and "full" (with the turns
a simulated senate item records, about 24 KB, the median of a real results.jsonl).

Prints per-item microseconds on each side, their ratio, and the store's time per item as a
share of a run's time per item (each cell keeps its results.jsonl, so the store's whole
cost is added to a run) (``--run-ms``: 11.8 ms, the senate's 84.9 items per second on the
simulator in BENCHMARKS.md). The issue's target is under 10% of a run.

    .venv/bin/python benchmarks/store_overhead.py [--items 20000] [--sync normal|full] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from govern.experiments.store import ResultsStore

BLOCK = 250
TARGET = 0.10  # of a run's time per item


def record(n: int, turns: int) -> dict[str, Any]:
    """A results.jsonl record; with TURNS turns of a senate debate (about 1.8 KB each)."""
    prompt = (
        "You are the Presiding consul in Senate of the Roman Republic (509-27 BCE, Rome). "
        "Bring a motion: solve the problem put to you step by step. " * 8
    )
    return {
        "id": f"gsm8k/test/{n:05d}",
        "gold": "18",
        "prediction_strict": "18",
        "prediction_flexible": "18",
        "correct_strict": True,
        "correct_flexible": True,
        "outcome": "completed",
        "path": ["motion", "debate", "division", "intercession", "enactment", "enacted"],
        "calls": 13,
        "failed_attempts": 0,
        "prompt_tokens": 3723,
        "completion_tokens": 360,
        "cost": 0.0,
        "latency": 0.092713,
        "unparsable": 0,
        "reasks": 0,
        "errors": [],
        "simulated": True,
        "final_text": "Combining them in order, the result comes to 18.\n#### 18",
        "turns": [
            {
                "stage": "debate",
                "agent": f"senator#{t}",
                "act": "critique",
                "visit": 1,
                "model": "sim/medium",
                "messages": [
                    {"role": "system", "content": prompt},
                    {"role": "user", "content": f"## Task\nItem {n}, turn {t}."},
                ],
                "text": "Let me work through this step by step.\n#### 18",
            }
            for t in range(turns)
        ],
    }


def measure(folder: Path, items: int, turns: int, sync: str) -> tuple[float, float, int]:
    """Seconds on each side (store, jsonl) for ITEMS records, and the mean line size."""
    records = [record(n, turns) for n in range(BLOCK)]
    size = sum(len(json.dumps(r, ensure_ascii=False)) for r in records) // BLOCK
    store_time = jsonl_time = 0.0
    with (
        ResultsStore.open(folder / "results.sqlite", "bench", "d", cells={"c": "x"}) as store,
        (folder / "results.jsonl").open("a", encoding="utf-8") as out,
    ):
        if sync == "full":
            store._conn().execute("PRAGMA synchronous=FULL")

        def to_store(start: int) -> float:
            began = time.perf_counter()
            for n, r in enumerate(batch, start):
                store.record_item("c", 0, {**r, "id": f"gsm8k/test/{n:05d}"})
            return time.perf_counter() - began

        def to_jsonl(start: int) -> float:
            began = time.perf_counter()
            for n, r in enumerate(batch, start):
                out.write(json.dumps({**r, "id": f"gsm8k/test/{n:05d}"}, ensure_ascii=False))
                out.write("\n")
                out.flush()
            return time.perf_counter() - began

        batch = records
        rng = random.Random(0)
        for start in range(0, items, BLOCK):
            batch = records[: min(BLOCK, items - start)]
            if rng.random() < 0.5:
                store_time += to_store(start)
                jsonl_time += to_jsonl(start)
            else:
                jsonl_time += to_jsonl(start)
                store_time += to_store(start)
        assert store.count() == items
    return store_time, jsonl_time, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--sync", choices=["normal", "full"], default="normal")
    parser.add_argument("--run-ms", type=float, default=11.8, help="a run's time per item")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    print(f"{args.items:,} items per size, blocks of {BLOCK} interleaved, sync={args.sync}")
    print(
        f"{'records':<8} {'bytes':>7} {'jsonl us':>9} {'store us':>9} {'ratio':>6} "
        f"{'added us':>9} {'of a run':>9}"
    )
    for name, turns in (("small", 0), ("full", 13)):
        with tempfile.TemporaryDirectory(dir=args.dir) as folder:
            store_s, jsonl_s, size = measure(Path(folder), args.items, turns, args.sync)
        store_us, jsonl_us = store_s / args.items * 1e6, jsonl_s / args.items * 1e6
        print(
            f"{name:<8} {size:>7,} {jsonl_us:>9.1f} {store_us:>9.1f} {store_us / jsonl_us:>5.2f}x"
            f" {store_us - jsonl_us:>9.1f} {store_us / (args.run_ms * 1000):>8.2%}"
        )
    print(
        f"'of a run': the store's whole time per item (each cell still writes its own "
        f"results.jsonl, so none of it is saved) over a run's {args.run_ms} ms per item "
        f"(target under {TARGET:.0%})"
    )


if __name__ == "__main__":
    main()
