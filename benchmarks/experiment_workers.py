"""The process executor's speed-up: one grid run in one process against worker processes.

A grid of the eight shipped institutions on sim/medium, the first N GSM8K items each, one
seed, run as `govern run EXPERIMENT` runs it (each cell's ledger file, results.jsonl and
the SQLite store on), alternately with ``--workers 1`` (every cell in this process, one
after another) and ``--workers W`` (cells in W spawned worker processes), each round
into fresh folders. Prints items per second of each side per round, and the ratio.

    .venv/bin/python benchmarks/experiment_workers.py [--items 60] [--rounds 3] [--workers 2]

The data is the sample shipped in tasks/ unless GOVERN_GSM8K names the official split.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from govern.experiments.executors import InlineExecutor, ProcessExecutor
from govern.experiments.runner import ExperimentRequest, prepare_experiment, run_experiment

ROOT = Path(__file__).resolve().parent.parent
INSTITUTIONS = ("athens", "bare", "edo", "mongol", "qin_han", "soviet", "tang", "us_federal")


def grid(folder: Path, items: int) -> Path:
    """The experiment file, inside a folder that counts as a project (references stay in)."""
    (folder / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
    (folder / "institutions").mkdir()
    for name in INSTITUTIONS:
        text = (ROOT / "institutions" / f"{name}.yaml").read_text()
        (folder / "institutions" / f"{name}.yaml").write_text(text)
    listed = "\n".join(f"  - institutions/{name}.yaml" for name in INSTITUTIONS)
    path = folder / "grid.yaml"
    path.write_text(
        "kind: experiment\nid: bench\ninstitutions:\n"
        f"{listed}\nmodels: [sim/medium]\ntasks:\n  - {{name: gsm8k, limit: {items}}}\n"
        "seeds: [0]\n"
    )
    return path


def one(experiment: Path, out: Path, workers: int, data: Path | None) -> tuple[float, int]:
    request = ExperimentRequest(manifest=experiment, out=out, workers=workers, data=data)
    prepared = prepare_experiment(request)
    executor = InlineExecutor() if workers == 1 else ProcessExecutor(workers)
    clock = time.perf_counter()
    outcome = run_experiment(prepared, executor)
    wall = time.perf_counter() - clock
    assert not outcome.failed and outcome.stored == outcome.planned, outcome
    return wall, outcome.stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=60, help="items per cell")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    data = Path(os.environ["GOVERN_GSM8K"]) if os.environ.get("GOVERN_GSM8K") else None
    data = data or ROOT / "tasks" / "gsm8k_sample.jsonl"
    rates: dict[int, list[float]] = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory() as tmp:
        experiment = grid(Path(tmp), args.items)
        for n in range(args.rounds):
            order = (1, args.workers) if n % 2 == 0 else (args.workers, 1)
            for workers in order:
                wall, items = one(experiment, Path(tmp) / f"r{n}-w{workers}", workers, data)
                rates[workers].append(items / wall)
                print(
                    f"round {n + 1}  --workers {workers}:  {items} items in {wall:6.2f} s  "
                    f"= {items / wall:6.1f} items/s",
                    flush=True,
                )
    single, many = statistics.median(rates[1]), statistics.median(rates[args.workers])
    print(f"\nmedian items/s: one process {single:.1f}, {args.workers} workers {many:.1f}")
    print(f"speed-up: {many / single:.2f}x (ideal {args.workers}x on {args.workers} free cores)")
    print("SIMULATED models: these are throughput figures of govern, not of any LLM")


if __name__ == "__main__":
    main()
