"""Fuzz the loader: mutated shipped specs load, or fail with FILE:LINE:COL errors, quickly.

Each example takes a shipped institution or manifest and applies a chain of
mutations (byte flips, line deletions and duplications, tags, aliases, deep
nesting, control characters, random unicode, odd scalars, swapped names...);
every link of the chain is one document, written to a file and loaded the way
``govern validate`` loads it. The property: ``load_checked`` either succeeds
(and then the fingerprint and both drawings work too) or raises ``SpecInvalid``
whose every line is ``FILE:LINE:COL: error: message``, printable, and no
document takes long. Anything else is a bug in govern.

CI runs a fixed set of examples (``derandomize``), ``EXAMPLES`` x ``CHAIN``
documents; ``make fuzz`` (``GOVERN_FUZZ=N``) runs N random examples and keeps
failures in Hypothesis's database to replay them.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govern.spec.checks import checked_institution, load_checked
from govern.spec.draw import draw
from govern.spec.errors import SpecInvalid
from govern.spec.fingerprint import fingerprint

ROOT = Path(__file__).resolve().parent.parent
SEEDS: list[tuple[str, bytes]] = [  # subfolders too: manifests name institutions in them
    (p.relative_to(ROOT).as_posix(), p.read_bytes())
    for folder in ("institutions", "manifests")
    for p in sorted((ROOT / folder).rglob("*.yaml"))
]
CHAIN = 5  # mutations per example, each one a document
EXPLORE = int(os.environ.get("GOVERN_FUZZ", "0"))  # make fuzz: this many random examples
EXAMPLES = EXPLORE or 2_000
SLOW = 5.0  # seconds of CPU one document may take (a 1 MiB spec takes about 1)
ERROR_LINE = re.compile(r"^[^\n]+:\d+:\d+: error: \S[^\n]*$")

# -- mutations: (document, random source) -> document ------------------------------------

TAGS = [
    "!!bool",
    "!!int",
    "!!float",
    "!!str",
    "!!timestamp",
    "!!binary",
    "!!set",
    "!!omap",
    "!!map",
    "!!seq",
    "!!null",
    "!!merge",
    "!!python/object/apply:os.system",
    "!!python/name:os.system",
    "!!python/tuple",
    "!foo",
    "!",
    "!<tag:yaml.org,2002:str>",
    "!e!x",
]
SCALARS = [
    "2001-13-45",
    "2001-12-14t21:59:43.10-99:99",
    "9" * 5000,
    "0x",
    "0b2",
    "0o9",
    "1e999",
    "-.inf",
    ".nan",
    "~",
    "null",
    "<<",
    "=",
    "yes",
    "Off",
    "1_000",
    "190:20:30",
    "'",
    '"',
    "{",
    "[",
    "]",
    "}",
    "? ",
    "*",
    "&",
    "!",
    "%",
    "@",
    "`",
    "|",
    ">",
    "- - -",
    "a: b: c",
    '"\\e[2J\\0\\x9b"',
    '"\\u202e\\U0001F600"',
    "x" * 100_000,
    "[" * 70 + "]" * 70,
]
CONTROL = [chr(c) for c in range(32)] + ["\x7f", "\x85", "\x9b", "\u2028", "\u202e", "\ufeff"]


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [b""]


def flip_bit(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    buf = bytearray(data)
    buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    return bytes(buf)


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.randbytes(rng.randint(1, 8)) + data[at:]


def delete_line(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    del lines[rng.randrange(len(lines))]
    return b"".join(lines)


def duplicate_line(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    at = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[at])
    return b"".join(lines)


def swap_lines(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[a], lines[b] = lines[b], lines[a]
    return b"".join(lines)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def reindent(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    at = rng.randrange(len(lines))
    lines[at] = rng.choice([b" ", b"\t", b"  ", b""]) + lines[at].lstrip(rng.choice([b" ", b""]))
    return b"".join(lines)


def _value_spots(data: bytes) -> list[int]:
    """Offsets just after 'key: ' or '- ', where a value starts."""
    return [m.end() for m in re.finditer(rb"(?::|-) ", data)] or [0]


def insert_at_value(data: bytes, text: str, rng: random.Random) -> bytes:
    at = rng.choice(_value_spots(data))
    return data[:at] + text.encode("utf-8", "surrogatepass") + data[at:]


def replace_value(data: bytes, text: str, rng: random.Random) -> bytes:
    at = rng.choice(_value_spots(data))
    end = data.find(b"\n", at)
    end = len(data) if end < 0 else end
    return data[:at] + text.encode("utf-8", "surrogatepass") + data[end:]


def insert_tag(data: bytes, rng: random.Random) -> bytes:
    tag = rng.choice(TAGS)
    if tag.startswith("!e!") and rng.random() < 0.5:
        data = b"%TAG !e! tag:example.com,2000:\n---\n" + data
    return insert_at_value(data, tag + " ", rng)


def odd_scalar(data: bytes, rng: random.Random) -> bytes:
    return replace_value(data, rng.choice(SCALARS), rng)


def aliases(data: bytes, rng: random.Random) -> bytes:
    name = rng.choice(["a", "b", "x"])
    choice = rng.randrange(5)
    if choice == 0:  # an anchor, and an alias to it somewhere else
        return insert_at_value(insert_at_value(data, f"&{name} ", rng), f"*{name} ", rng)
    if choice == 1:  # a node that contains itself
        return replace_value(
            data, rng.choice([f"&{name} [*{name}]", f"&{name} {{k: *{name}}}"]), rng
        )
    if choice == 2:  # an alias with no anchor, or an alias as a key
        return insert_at_value(data, rng.choice([f"*{name}", f"*{name} : 1\n"]), rng)
    if choice == 3:  # a bomb, appended
        levels, width = rng.randint(3, 12), rng.randint(2, 12)
        bomb = [f"b0: &b0 [{','.join(['lol'] * width)}]"]
        bomb += [f"b{k}: &b{k} [{','.join([f'*b{k - 1}'] * width)}]" for k in range(1, levels)]
        return data.rstrip(b"\n") + b"\n" + "\n".join(bomb).encode() + b"\n"
    data = replace_value(data, f"&{name} v", rng)  # an anchored scalar, aliased anywhere
    return insert_at_value(data, f"*{name} ", rng)


def deep_nesting(data: bytes, rng: random.Random) -> bytes:
    depth = rng.choice([8, 62, 63, 64, 65, 66, 200, 999, 1001, 20_000])
    if rng.random() < 0.5:
        return replace_value(data, "[" * depth + "]" * depth, rng)
    opener = rng.choice(["{a: ", "[", "- "])
    closer = {"{a: ": "}", "[": "]", "- ": ""}[opener]
    return replace_value(data, opener * depth + "x" + closer * depth, rng)


def block_nesting(data: bytes, rng: random.Random) -> bytes:
    depth = rng.choice([63, 64, 65, 300])
    block = "".join(" " * (i + 1) + "k:\n" for i in range(depth)) + " " * (depth + 1) + "v\n"
    return data.rstrip(b"\n") + b"\nnested:\n" + block.encode()


def control_chars(data: bytes, rng: random.Random) -> bytes:
    text = "".join(rng.choice(CONTROL) for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.3:
        return insert_at_value(data, text, rng)
    at = rng.randrange(len(data) + 1)
    return data[:at] + text.encode() + data[at:]


def random_unicode(data: bytes, rng: random.Random) -> bytes:
    def char() -> str:
        plane = rng.choice([0x80, 0x800, 0xD800, 0x10000, 0x10FFFF])
        return chr(rng.randrange(min(plane, 0x10FFFF)))

    text = "".join(char() for _ in range(rng.randint(1, 12)))
    at = rng.choice(_value_spots(data))
    return data[:at] + text.encode("utf-8", "surrogatepass") + data[at:]


def swap_names(data: bytes, rng: random.Random) -> bytes:
    """Put one word of the file in place of another: dangling references, duplicate ids."""
    words = list(re.finditer(rb"\b[a-z_][a-z0-9_]*\b", data))
    if len(words) < 2:
        return data
    target, source = rng.choice(words), rng.choice(words)
    return data[: target.start()] + source.group() + data[target.end() :]


def documents(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    marker = rng.choice([b"---\n", b"...\n", b"%YAML 1.1\n---\n", b"%YAML 9.9\n", b"--- |\n"])
    lines.insert(rng.randrange(len(lines) + 1), marker)
    return b"".join(lines)


def long_line(data: bytes, rng: random.Random) -> bytes:
    return replace_value(data, rng.choice(["a", "é", "\\"]) * rng.choice([1025, 70_000]), rng)


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    f.__name__: f
    for f in (
        flip_bit,
        random_bytes,
        delete_line,
        duplicate_line,
        swap_lines,
        truncate,
        reindent,
        insert_tag,
        odd_scalar,
        aliases,
        deep_nesting,
        block_nesting,
        control_chars,
        random_unicode,
        swap_names,
        documents,
        long_line,
    )
}


def mutate(data: bytes, name: str, seed: int) -> bytes:
    """One mutation, reproducible from its name and seed."""
    return MUTATIONS[name](data, random.Random(seed))


# -- the property --------------------------------------------------------------------------


def make_project(folder: Path) -> Path:
    """A project with pristine copies of the shipped specs, which manifests may reference."""
    (folder / "pyproject.toml").write_text("[project]\nname = 'fuzz'\n")
    for name, data in SEEDS:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def fuzz_path(project: Path, seed_name: str) -> Path:
    """Where a mutant of ``seed_name`` is written: beside it, so references still resolve."""
    return project / Path(seed_name).parent / "fuzz.yaml"


def load_like_validate(path: Path) -> str:
    """'valid' or 'invalid'; raises AssertionError (or the bug itself) otherwise."""
    start = time.process_time()
    try:
        loaded = load_checked(path)
    except SpecInvalid as exc:
        assert exc.errors, "SpecInvalid without errors"
        for error in exc.errors:
            line = str(error)
            assert ERROR_LINE.match(line) and line.isprintable(), line
        outcome = "invalid"
    else:
        cells = getattr(loaded, "cells", None)  # an experiment: each cell's institution
        for institution in (
            {id(c.manifest.institution): c.manifest.institution for c in cells}.values()
            if cells is not None
            else [checked_institution(loaded)]
        ):
            fingerprint(institution)
            draw(institution, "mermaid")
            draw(institution, "dot")
        outcome = "valid"
    spent = time.process_time() - start
    assert spent < SLOW, f"{spent:.1f} s of CPU for one document"
    return outcome


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("fuzz"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not EXPLORE,
    database=settings.default.database if EXPLORE else None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, len(SEEDS) - 1),
    chain=st.lists(
        st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(0, 2**32 - 1)),
        min_size=CHAIN,
        max_size=CHAIN,
    ),
)
def test_mutated_specs_load_or_fail_with_positioned_errors(
    project: Path, seed: int, chain: list[tuple[str, int]]
) -> None:
    name, data = SEEDS[seed]
    path = fuzz_path(project, name)
    for mutation, mutation_seed in chain:
        data = mutate(data, mutation, mutation_seed)
        path.write_bytes(data)
        load_like_validate(path)


def test_every_mutation_changes_some_spec_and_the_seeds_are_valid(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    for name, _ in SEEDS:
        assert load_like_validate(project / name) == "valid", name
    for mutation in MUTATIONS:
        changed = sum(mutate(data, mutation, s) != data for _, data in SEEDS for s in range(5))
        assert changed > 0, mutation
