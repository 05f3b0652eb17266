"""The README's examples are real: the institution and manifest it shows validate, and
every command it shows exists as written."""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from govern.cli import build_parser
from tests.conftest import ROOT, TEST_KEYS, spec_errors, write

README = (ROOT / "README.md").read_text()
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)


def test_the_readme_institution_example_validates(project: Path) -> None:
    institution = next(b for b in YAML_BLOCKS if "\nstages:" in b and "pattern:" in b)
    assert spec_errors(write(project / "institutions", "example.yaml", institution)) == []


def test_the_readme_manifest_example_validates(project: Path) -> None:
    manifest = next(
        b for b in YAML_BLOCKS if "institution:" in b and "models:" in b and "stages:" not in b
    )
    shutil.copytree(ROOT / "institutions", project / "institutions")
    assert spec_errors(write(project / "manifests", "example.yaml", manifest)) == []


# The README's commands are real: every `govern ...` it shows parses with the
# parser the command line uses (nothing runs), so the docs and the code cannot drift.

SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
NUMERIC_TYPES = {"positive_int", "non_negative_int", "positive_seconds", "int"}


def _shell_commands() -> list[list[str]]:
    """Each command line of the README's ``sh`` blocks as words, comments dropped,
    continuations joined, ``<placeholders>`` made one word, a redirection cut off."""
    commands = []
    for block in SHELL_BLOCKS:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(re.sub(r"<[^>]*>", "PLACEHOLDER", line), comments=True)
            words = words[: words.index(">")] if ">" in words else words
            if words:
                commands.append(words)
    return commands


def _inline_govern_commands() -> list[list[str]]:
    """The `govern ...` commands quoted inline, in tables and prose."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    return [
        shlex.split(re.sub(r"<[^>]*>", "PLACEHOLDER", text.replace("\\|", "|")))
        for text in re.findall(r"`(govern [^`]+)`", prose)
    ]


def _subparser(name: str) -> argparse.ArgumentParser:
    subparsers = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    assert name in subparsers.choices, f"the README shows `govern {name}`, which does not exist"
    return subparsers.choices[name]


def _command_parser(words: list[str]) -> argparse.ArgumentParser:
    """The parser of the command ``govern WORDS...`` names, into its subcommands
    (``govern maker plan``: plan's)."""
    parser = _subparser(words[1])
    for word in words[2:]:
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not nested or word not in nested[0].choices:
            break
        parser = nested[0].choices[word]
    return parser


def _concrete(words: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """A synopsis as arguments that must parse: [optional] groups opened and the
    metavar of a numeric option given a number (``--limit N`` -> ``--limit 1``), a URL one a URL."""
    options = {s: a for a in parser._actions for s in a.option_strings}
    out: list[str] = []
    for word in words:
        word = word.strip("[]")
        if not word:
            continue
        previous = options.get(out[-1]) if out else None
        kind = getattr(getattr(previous, "type", None), "__name__", "")
        placeholder = not word.startswith("-") and word.isupper()
        if placeholder and kind in NUMERIC_TYPES:
            word = "1"
        elif placeholder and kind == "api_base":
            word = "http://127.0.0.1:8080/v1"
        out.append(word)
    return out


GOVERN_LINES = [w[1:] for w in _shell_commands() if w[0] == "govern"]


def test_the_readme_shows_govern_commands() -> None:
    assert len(GOVERN_LINES) >= 8 and len(_inline_govern_commands()) >= 10


@pytest.mark.parametrize("words", GOVERN_LINES, ids=" ".join)
def test_every_govern_command_in_a_readme_block_parses(words: list[str]) -> None:
    parser = _subparser(words[0])
    try:
        build_parser().parse_args(_concrete(words, parser))
    except SystemExit:
        pytest.fail(f"the README's `govern {' '.join(words)}` does not parse")


@pytest.mark.parametrize("words", _inline_govern_commands(), ids=" ".join)
def test_every_inline_govern_command_names_real_options(words: list[str]) -> None:
    parser = _command_parser(words)
    known = {s for a in parser._actions for s in a.option_strings}
    flags = {w.strip("[]").split("=")[0] for w in words if w.strip("[").startswith("--")}
    assert flags <= known, f"`{' '.join(words)}`: no such option {sorted(flags - known)}"


@pytest.mark.parametrize("words", _shell_commands(), ids=" ".join)
def test_the_files_a_readme_command_names_exist(words: list[str]) -> None:
    for word in words:
        if re.match(r"^(institutions|manifests|benchmarks|tasks|schemas)/", word):
            assert glob.glob(str(ROOT / word)), f"the README names {word}, which is not here"


def test_the_readme_says_how_to_call_govern_right_after_make_demo() -> None:
    after_demo = README.split("make demo", 1)[1].split("## ", 1)[0]
    assert "source .venv/bin/activate" in after_demo
    makefile = (ROOT / "Makefile").read_text()
    demo = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "source $(VENV)/bin/activate" in demo.strip().splitlines()[-1]


def test_every_shell_command_is_govern_or_a_known_tool() -> None:
    """A new kind of command in the README gets a check here, or an explicit pass."""
    tools = {"govern", "make", "source", "export", ".venv/bin/python"}
    tools |= {"pip", "python", "ollama", "vllm"}  # local servers: tests/test_local_servers.py
    assert {w[0] for w in _shell_commands()} <= tools


ACTIVATE = Path(sys.executable).parent / "activate"


@pytest.mark.skipif(not ACTIVATE.is_file(), reason="the tests do not run in a virtualenv")
def test_after_activating_the_venv_govern_is_on_the_path() -> None:
    """What the README tells a new user to do, in a fresh shell whose PATH lacks the venv."""
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != ACTIVATE.parent
    )
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": path}
    result = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(ACTIVATE))} && govern --version"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("govern ")


# The second edition's example: one complete institution, the excerpts that explain it
# (each checked against it), and a manifest fragment for it.

EXCERPT = "# excerpt of the small republic above\n"
MANIFEST_FRAGMENT = "# in a manifest of the small republic above\n"


def _republic() -> str:
    return next(b for b in YAML_BLOCKS if "\nid: small_republic\n" in "\n" + b)


def _contained(part: object, whole: object) -> bool:
    """Whether ``part`` says nothing ``whole`` does not: mappings key by key, a list of
    mappings item by item (each within some item of the whole), anything else equal."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and _contained(value, whole[key]) for key, value in part.items()
        )
    if isinstance(part, list) and part and all(isinstance(p, dict) for p in part):
        return isinstance(whole, list) and all(any(_contained(p, w) for w in whole) for p in part)
    return part == whole


def test_every_complete_institution_in_the_readme_validates(project: Path) -> None:
    institutions = [b for b in YAML_BLOCKS if "\nstages:" in b and "pattern:" in b]
    assert len(institutions) >= 2
    for n, text in enumerate(institutions):
        path = write(project / "institutions", f"example_{n}.yaml", text)
        assert spec_errors(path) == [], text.splitlines()[0]


EXCERPTS = [b for b in YAML_BLOCKS if b.startswith(EXCERPT)]


@pytest.mark.parametrize("excerpt", EXCERPTS, ids=lambda b: b.splitlines()[1].strip())
def test_each_excerpt_is_part_of_the_small_republic(excerpt: str) -> None:
    republic = yaml.safe_load(_republic())
    part = yaml.safe_load(excerpt)
    where = [republic] if isinstance(part, dict) else [republic["roles"], republic["stages"]]
    assert any(_contained(part, whole) for whole in where), excerpt


def test_the_readme_explains_each_construct_by_excerpts() -> None:
    assert len(EXCERPTS) >= 8


def test_the_manifest_fragment_validates_for_the_small_republic(project: Path) -> None:
    fragments = [b for b in YAML_BLOCKS if b.startswith(MANIFEST_FRAGMENT)]
    assert fragments
    write(project / "institutions", "republic.yaml", _republic())
    for n, fragment in enumerate(fragments):
        manifest = f"id: republic_{n}\ninstitution: ../institutions/republic.yaml\n{fragment}"
        assert spec_errors(write(project / "manifests", f"m{n}.yaml", manifest)) == []


def test_the_small_republic_runs_as_the_readme_tells(project: Path, cli) -> None:
    """Elected on the first item, the magistrate holds the office for five finished items
    (the items between go straight to the proposal), then it is elected again; the audit
    redoes the draws."""
    path = write(project / "institutions", "republic.yaml", _republic())
    out = project / "run"
    data = str(ROOT / "tasks" / "gsm8k_sample.jsonl")
    args = ("run", str(path), "--task", "gsm8k", "--limit", "6", "--concurrency", "1")
    ran = cli(*args, "--data", data, "--out", str(out), home=project, **TEST_KEYS)
    assert ran.returncode == 0, ran.stderr
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    paths = [r["path"] for r in sorted(results, key=lambda r: r["id"])]
    elected, held = ["office_check", "sortition"], ["office_check", "proposal"]
    assert [p[:2] for p in paths] == [elected, held, held, held, held, elected]
    entries = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    offices = [e["body"] for e in entries if e["kind"] == "office"]
    assert [(o["event"], o.get("by"), o["term"]) for o in offices[:2]] == [
        ("chosen", "election", 5),
        ("term_ended", None, 5),
    ]
    assert any(e["kind"] == "oversight" for e in entries)
    audited = cli("audit", str(out), home=project, **TEST_KEYS)
    assert audited.returncode == 0, audited.stdout
