"""Validation time for 1,000 generated institutions, against parsing the same files.

Each generated institution is a gated pipeline of 5 to 20 draft/review stages
with bounded send-backs, written to a temporary folder. We time the full
`load_checked` (parse with positions, pydantic validation, every static check)
and, in the same run, a plain parse of the same files with PyYAML's C loader
(the fastest way to read them without any checks), and print the ratio.

    .venv/bin/python benchmarks/validate_many.py [--count 1000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import yaml

from govern.spec.checks import load_checked
from govern.spec.fingerprint import fingerprint


def generated_institution(rng: random.Random, index: int) -> str:
    count = rng.randint(5, 20)
    lines = [
        f"id: gen_{index}",
        f"name: Generated {index}",
        "era: now",
        "pattern: gated_pipeline",
        "history: generated for the benchmark",
        "roles:",
        "  - {id: author, title: Author, instructions: Draft.}",
        "  - {id: judge, title: Judge, instructions: Review.}",
        "entry: s0",
        "stages:",
    ]
    for i in range(count):
        after = f"s{i + 1}" if i + 1 < count else "end"
        if i % 2:
            back = f"s{rng.randrange(i)}"
            lines += [
                f"  - id: s{i}",
                "    kind: review",
                "    role: judge",
                "    purpose: Check.",
                f"    next: {{approve: {after}, unparsable: {after}, "
                f"reject: {{to: {back}, max_visits: 2, exhausted: {after}}}}}",
            ]
        else:
            lines += [
                f"  - id: s{i}",
                "    kind: draft",
                "    role: author",
                "    purpose: Draft.",
                f"    next: {{done: {after}, unparsable: {after}}}",
            ]
    lines += ["  - id: end", "    kind: terminal"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    count = parser.parse_args().count
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(count):
            path = Path(folder) / f"gen_{i}.yaml"
            path.write_text(generated_institution(rng, i))
            paths.append(path)

        start = time.perf_counter()
        for path in paths:
            yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        parse = time.perf_counter() - start

        start = time.perf_counter()
        for path in paths:
            load_checked(path)
        validate = time.perf_counter() - start

        start = time.perf_counter()
        for path in paths:
            fingerprint(load_checked(path).institution)
        with_fingerprint = time.perf_counter() - start

    def row(label: str, seconds: float, extra: str = "") -> None:
        print(f"  {label:<30} {seconds:7.3f} s  ({seconds / count * 1e3:.2f} ms each){extra}")

    print(f"{count} generated institutions (5-20 stages each)")
    row("plain parse (CSafeLoader)", parse)
    row("govern validation", validate, f", {validate / parse:.2f}x plain parsing")
    row("validation + fingerprint", with_fingerprint)


if __name__ == "__main__":
    main()
