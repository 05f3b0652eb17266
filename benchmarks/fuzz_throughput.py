"""Documents per second through the fuzzer's loader path, against plain PyYAML; hostile cases.

The documents are the fuzz test's own (tests/test_fuzz_loader.py): shipped specs
under chains of mutations, generated here from a seeded random source. For each
document we time, side by side and in alternating order, the fuzzer's loader
path (write nothing: read the file, ``load_checked``, and for a valid spec the
fingerprint and both drawings) and a plain ``yaml.safe_load`` of the same file
(with the C loader when PyYAML has it; its exceptions caught and ignored).

Then the hostile inputs of the attacker probe, each timed once: a 10,000-stage
generated institution (validate), a 9-level alias bomb of under 400 bytes
(validate), and a 26-stage institution with bounded loops (validate + fingerprint,
what ``govern inspect`` does).

    .venv/bin/python benchmarks/fuzz_throughput.py [--examples 600] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the mutations live in the fuzz test

from govern.spec.checks import checked_institution, load_checked  # noqa: E402
from govern.spec.errors import SpecInvalid  # noqa: E402
from govern.spec.fingerprint import fingerprint  # noqa: E402
from tests.test_fuzz_loader import (  # noqa: E402
    CHAIN,
    MUTATIONS,
    SEEDS,
    fuzz_path,
    load_like_validate,
    make_project,
    mutate,
)
from tests.test_spec_hostile import alias_bomb, big_institution, loopy  # noqa: E402

_SAFE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def plain_load(path: Path) -> None:
    # Invalid YAML, invalid UTF-8, recursion: all the same to a baseline.
    with contextlib.suppress(Exception):
        yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE)


def documents(project: Path, examples: int, seed: int) -> list[Path]:
    """The chains of mutated documents, each written to its own file."""
    rng = random.Random(seed)
    names = sorted(MUTATIONS)
    paths = []
    for example in range(examples):
        name, data = SEEDS[rng.randrange(len(SEEDS))]
        folder = fuzz_path(project, name).parent
        for link in range(CHAIN):
            data = mutate(data, rng.choice(names), rng.randrange(2**32))
            path = folder / f"fuzz_{example}_{link}.yaml"
            path.write_bytes(data)
            paths.append(path)
    return paths


def timed(work, *args) -> float:
    start = time.perf_counter()
    work(*args)
    return time.perf_counter() - start


def hostile(folder: Path) -> list[tuple[str, float, str]]:
    rows = []
    for label, name, text, inspect in (
        ("10,000-stage institution, validate", "big.yaml", big_institution(10_000), False),
        ("alias bomb (9 levels), validate", "bomb.yaml", alias_bomb(9), False),
        ("26 stages with bounded loops, inspect", "loopy.yaml", loopy(), True),
    ):
        path = folder / name
        path.write_text(text)
        start = time.perf_counter()
        try:
            institution = checked_institution(load_checked(path))
            outcome = "valid"
            if inspect:
                print_ = fingerprint(institution)
                outcome += f", calls {print_.calls_shortest_happy_path}-"
                outcome += f"{print_.calls_longest_happy_path}"
        except SpecInvalid as exc:
            outcome = f"refused: {exc.errors[0].message[:60]}"
        rows.append(
            (f"{label} ({path.stat().st_size:,} bytes)", time.perf_counter() - start, outcome)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=600, help=f"chains of {CHAIN} documents")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = make_project(Path(folder))
        paths = documents(project, args.examples, args.seed)
        govern_s = plain_s = 0.0
        outcomes: dict[str, int] = {}
        for i, path in enumerate(paths):  # interleaved; which goes first alternates
            if i % 2:
                plain_s += timed(plain_load, path)
            start = time.perf_counter()
            outcome = load_like_validate(path)
            govern_s += time.perf_counter() - start
            if not i % 2:
                plain_s += timed(plain_load, path)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        rows = hostile(Path(folder))

    count = len(paths)
    print(f"{count} mutated documents ({args.examples} chains of {CHAIN}; {outcomes})")
    print(f"  {'plain yaml.safe_load':<34} {plain_s:7.3f} s  {count / plain_s:8.0f} documents/s")
    print(
        f"  {'fuzzer loader path (load_checked)':<34} {govern_s:7.3f} s  "
        f"{count / govern_s:8.0f} documents/s, {govern_s / plain_s:.2f}x plain"
    )
    print("hostile inputs")
    for label, seconds, outcome in rows:
        print(f"  {label:<58} {seconds:7.3f} s  {outcome}")


if __name__ == "__main__":
    main()
