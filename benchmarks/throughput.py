"""Throughput with a simulated 500 ms model latency and 32 calls in flight.

The ideal is concurrency / latency = 64 model calls per second; the ratio of
measured to ideal shows what orchestration, fan-out joins and item scheduling
cost when the model is slow (target: at least 80%).

    .venv/bin/python benchmarks/throughput.py [--items 100] [--latency-ms 500] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from govern.models.router import ModelRouter
from govern.run.runner import RunRequest, execute, prepare
from govern.spec.models import SimOverride

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    slow = {"sim/medium": SimOverride(latency_ms=args.latency_ms)}
    router = ModelRouter(simulator=slow, concurrency=args.concurrency)
    with tempfile.TemporaryDirectory() as folder:
        request = RunRequest(
            ROOT / "manifests" / "senate.yaml",
            task="gsm8k",
            limit=args.items,
            concurrency=args.concurrency,
            out=Path(folder) / "run",
        )
        summary = asyncio.run(execute(prepare(request, router)))
    calls = (summary.calls_per_item or 0) * summary.n
    measured = calls / summary.wall_seconds
    ideal = args.concurrency / (args.latency_ms / 1000)
    print(
        f"senate, {summary.n} items, {calls:.0f} calls, {args.latency_ms:.0f} ms simulated "
        f"latency, concurrency {args.concurrency}"
    )
    print(f"  wall time        {summary.wall_seconds:7.2f} s")
    print(f"  calls per s      {measured:7.1f}  (ideal {ideal:.0f})")
    print(f"  ratio to ideal   {measured / ideal:7.1%}  (target >= 80%)")


if __name__ == "__main__":
    main()
