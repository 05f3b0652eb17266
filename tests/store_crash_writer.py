"""Record a grid's items in a results store, so that tests/test_experiment_store.py can
SIGKILL it part-way, run it again to resume, and compare with a writer never interrupted.

    python tests/store_crash_writer.py STORE [--items N] [--every K] [--pace S] [--hold SECONDS]

The grid is CELLS x SEEDS x N items, recorded in a fixed order; items already finished are
skipped (the resume path). Every record is a function of (cell, seed, item) alone, about
2 KB, with one in thirteen an error. After each K-th item committed it prints
``CELL SEED ITEM COMMITTED`` (flushed), so the test knows which items were committed before
the kill; ``--pace`` waits that long after each item, so that a loaded machine's test still
kills it part-way rather than after it has finished. With ``--hold`` it instead takes the
store's write lock and holds it that long, printing ``locked`` once it has it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from typing import Any

from govern.experiments.store import ResultsStore
from govern.ledger.binding import line_digest

EXPERIMENT = "crash"
DIGEST = "sha256:" + "ab" * 32
CELLS = {"senate--sim-weak": "sha256:" + "01" * 32, "venice--sim-strong": "sha256:" + "02" * 32}
SEEDS = (0, 1)


def record(cell: str, seed: int, item: str) -> dict[str, Any]:
    """A deterministic record shaped like results.jsonl's, with some weight to it."""
    h = hashlib.sha256(f"{cell}/{seed}/{item}".encode()).digest()
    error = h[0] % 13 == 0
    return {
        "id": item,
        "gold": str(h[1]),
        "prediction_strict": None if error else str(h[2]),
        "prediction_flexible": None if error else str(h[2]),
        "correct_strict": not error and h[1] == h[2],
        "correct_flexible": not error and h[1] % 7 == h[2] % 7,
        "outcome": "error" if error else "completed",
        "calls": h[3] % 20,
        "prompt_tokens": 100 * h[4],
        "completion_tokens": h[5],
        "cost": None if h[6] % 5 == 0 else h[6] / 1000,
        "latency": h[7] / 100,
        "errors": ["timeout after 3 attempts"] if error else [],
        "simulated": True,
        "final_text": "#### " + str(h[2]) + " — ünïcödé ✓",
        "turns": [{"stage": "debate", "text": h.hex() * 8} for _ in range(3)],
    }


def digest(cell: str, seed: int, item: str) -> str:
    """The digest of the record's results.jsonl line, as the store keeps it."""
    return line_digest(json.dumps(record(cell, seed, item), ensure_ascii=False).encode("utf-8"))


def grid(items: int) -> list[tuple[str, int, str]]:
    return [
        (cell, seed, f"gsm8k/test/{n:04d}")
        for cell in sorted(CELLS)
        for seed in SEEDS
        for n in range(items)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--pace", type=float, default=0.0)
    parser.add_argument("--hold", type=float, default=None)
    args = parser.parse_args()
    with ResultsStore.open(args.store, EXPERIMENT, DIGEST, cells=CELLS) as store:
        if args.hold is not None:
            db = store._conn()
            db.execute("BEGIN IMMEDIATE")
            print("locked", flush=True)
            time.sleep(args.hold)
            db.execute("COMMIT")
            return
        done = {(cell, seed): store.finished(cell, seed) for cell in CELLS for seed in SEEDS}
        committed = 0
        for cell, seed, item in grid(args.items):
            if item in done[cell, seed]:
                continue
            store.record_item(cell, seed, record(cell, seed, item))
            committed += 1
            if committed % args.every == 0:
                print(cell, seed, item, committed, flush=True)
            if args.pace:
                time.sleep(args.pace)


if __name__ == "__main__":
    main()
