"""Throughput with a slow model: a simulated 500 ms per call and 512 calls in flight.

The senate on sim/medium slowed to ``--latency-ms`` per call (with its jitter),
``--concurrency`` calls and items in flight, in one process, as `govern run`
runs it (ledger file, results, summary). The ideal is concurrency / latency calls
per second (1,024 at 512 in flight); the ratio of measured to ideal shows what
orchestration, fan-out joins and item scheduling cost when the model is slow
(target: at least 80%). The items are GSM8K problems: the official test split
when GOVERN_GSM8K (or ../shared/data/gsm8k/test.jsonl) is there, else the
project's sample, repeated to ``--items``.

    .venv/bin/python benchmarks/throughput.py [--items 2000] [--latency-ms 500] [--concurrency 512]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from govern.models.router import ModelRouter
from govern.run.runner import RunRequest, execute, prepare
from govern.spec.models import SimOverride

ROOT = Path(__file__).resolve().parent.parent


def write_items(path: Path, count: int) -> tuple[Path, str]:
    """``count`` problems, one a line, and where they came from."""
    split = Path(os.environ.get("GOVERN_GSM8K", ROOT.parent / "shared/data/gsm8k/test.jsonl"))
    source = split if split.is_file() else ROOT / "tasks" / "gsm8k_sample.jsonl"
    lines = source.read_text().splitlines()
    path.write_text("\n".join(lines[i % len(lines)] for i in range(count)) + "\n")
    repeated = " repeated" if count > len(lines) else ""
    return path, f"{source.name}, {len(lines)} problems{repeated}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--concurrency", type=int, default=512)
    args = parser.parse_args()
    os.environ.setdefault("GOVERN_LEDGER_KEY", "be" * 32)  # throwaway keys for the benchmark
    os.environ.setdefault("GOVERN_SIGNING_KEY", "bf" * 32)
    slow = {"sim/medium": SimOverride(latency_ms=args.latency_ms)}
    router = ModelRouter(simulator=slow, concurrency=args.concurrency)
    with tempfile.TemporaryDirectory() as folder:
        data, source = write_items(Path(folder) / "items.jsonl", args.items)
        request = RunRequest(
            ROOT / "manifests" / "senate.yaml",
            task="gsm8k",
            data=data,
            concurrency=args.concurrency,
            out=Path(folder) / "run",
        )
        run = prepare(request, router)
        cpu = time.process_time()
        summary = asyncio.run(execute(run))
        cpu = time.process_time() - cpu
    calls = (summary.calls_per_item or 0) * summary.n
    measured = calls / summary.wall_seconds
    ideal = args.concurrency / (args.latency_ms / 1000)
    print(
        f"senate, {summary.n} items ({source}), {calls:.0f} calls, {args.latency_ms:.0f} ms "
        f"simulated latency, {args.concurrency} calls and items in flight, one process"
    )
    print(f"  wall time        {summary.wall_seconds:7.2f} s")
    print(f"  CPU time         {cpu:7.2f} s  ({cpu / calls * 1e3:.3f} ms a call)")
    print(f"  calls per s      {measured:7.1f}  (ideal {ideal:.0f})")
    print(f"  ratio to ideal   {measured / ideal:7.1%}  (target >= 80%)")


if __name__ == "__main__":
    main()
