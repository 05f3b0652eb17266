"""Start-up time of `govern --help` against `python -c pass`, measured side by side.

Runs the two commands alternately so that machine noise hits both alike, and
prints medians and their ratio. Target: under 0.3 s absolute for `govern --help`.

    .venv/bin/python benchmarks/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOVERN = Path(sys.executable).with_name("govern")


def elapsed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "govern --help": [str(GOVERN), "--help"],
        "govern validate institutions manifests": [
            str(GOVERN),
            "validate",
            "institutions",
            "manifests",
        ],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(elapsed(command))
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<42} {'median s':>9} {'ratio to python':>16}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<42} {median:>9.3f} {median / base:>15.2f}x")
    help_median = statistics.median(times["govern --help"])
    verdict = "meets" if help_median < 0.3 else "MISSES"
    print(f"govern --help median {help_median:.3f} s {verdict} the 0.3 s target ({runs} runs each)")


if __name__ == "__main__":
    main()
