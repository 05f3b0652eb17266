"""Accuracy and cost of every shipped institution under sim/weak and sim/strong.

Runs each institution (and the senate manifest) on the same GSM8K items with
every role on one simulated model, then prints a table and the two rankings.
This is a measurement of the SIMULATOR, not of any LLM.

    export GOVERN_GSM8K=../shared/data/gsm8k/test.jsonl
    .venv/bin/python benchmarks/institution_ranking.py [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from govern.run.runner import RunRequest, execute, prepare

ROOT = Path(__file__).resolve().parent.parent
SPECS = [
    *sorted((ROOT / "institutions").glob("*.yaml")),
    *sorted((ROOT / "institutions" / "first_edition").glob("*.yaml")),
    ROOT / "manifests" / "senate.yaml",
]


def label(spec: Path) -> str:
    """The spec's name in the table: first-edition topologies keep their folder."""
    return f"{spec.parent.name}/{spec.stem}" if spec.parent.name == "first_edition" else spec.stem


MODELS = ("sim/weak", "sim/strong")


def measure(spec: Path, model: str, limit: int | None, folder: Path) -> tuple[float, float]:
    request = RunRequest(
        spec,
        task="gsm8k",
        limit=limit,
        model=model,
        concurrency=64,
        out=folder / f"{label(spec).replace('/', '-')}-{model.replace('/', '-')}",
    )
    summary = asyncio.run(execute(prepare(request)))
    return summary.accuracy_strict.value or 0.0, summary.calls_per_item or 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="items per run (default: all)")
    limit = parser.parse_args().limit
    results: dict[tuple[str, str], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for model in MODELS:
            for spec in SPECS:
                results[label(spec), model] = measure(spec, model, limit, Path(folder))
        n = prepare(
            RunRequest(SPECS[0], task="gsm8k", limit=limit, out=Path(folder) / "probe")
        ).data
    print(f"SIMULATED: sim/ models on {len(n.items)} items of {n.source}\n")
    header = "| institution | " + " | ".join(f"{m} accuracy | {m} calls/item" for m in MODELS)
    print(header + " |")
    print("|---" * (1 + 2 * len(MODELS)) + "|")
    for spec in SPECS:
        got = [results[label(spec), m] for m in MODELS]
        cells = [f"{accuracy:.1%} | {calls:.1f}" for accuracy, calls in got]
        print(f"| {label(spec)} | " + " | ".join(cells) + " |")
    rankings = {}
    for model in MODELS:
        order = sorted(SPECS, key=lambda s, m=model: -results[label(s), m][0])
        rankings[model] = [label(s) for s in order]
        print(f"\nranking under {model}: {' > '.join(rankings[model])}")
    same = rankings[MODELS[0]] == rankings[MODELS[1]]
    best = {m: rankings[m][0] for m in MODELS}
    print(
        f"\nrankings differ: {not same}; best institution: "
        + ", ".join(f"{m} -> {b}" for m, b in best.items())
    )


if __name__ == "__main__":
    main()
