"""`govern run SPEC --out DIR` again on DIR's run: spelling out a setting the run took by
default changes nothing, and a real change, or an edited spec, is refused with both values
named and what to do, whether the run there is unfinished or complete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from govern.cli import main
from tests.conftest import ROOT, write

SAMPLE = ROOT / "tasks" / "gsm8k_sample.jsonl"

# A manifest that gives the run's limit, model and (by default) seed, so the command line
# can spell them out: --limit 3, --model sim/strong, --seed 0 are no change.
MANIFEST = """\
id: rerun
institution: bare.yaml
models: {default: sim/strong}
task: {name: gsm8k, limit: 3}
"""


def data() -> list[str]:
    return ["--data", str(SAMPLE)]


def a_run(tmp_path: Path, *, unfinished: bool) -> tuple[Path, Path]:
    """The manifest and its complete run, started with none of its settings on the command
    line; ``unfinished``: the ledger cut after the first item's end, as if killed there."""
    shutil.copy(ROOT / "institutions" / "bare.yaml", tmp_path / "bare.yaml")
    manifest, folder = write(tmp_path, "rerun.yaml", MANIFEST), tmp_path / "run"
    assert main(["run", str(manifest), *data(), "--out", str(folder)]) == 0
    if unfinished:
        ledger = folder / "ledger.jsonl"
        lines = ledger.read_bytes().splitlines(keepends=True)
        first_end = next(n for n, line in enumerate(lines) if b'"event":"end"' in line)
        ledger.write_bytes(b"".join(lines[: first_end + 1]))
        (folder / "ledger.head").unlink()
    return manifest, folder


def rerun(
    manifest: Path, folder: Path, capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["run", str(manifest), *data(), *options, "--out", str(folder)])
    return status, capsys.readouterr().err


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


SPELLED_OUT = [
    ("--seed", "0"),
    ("--limit", "3"),
    ("--model", "sim/strong"),
    ("--role-model", "solver=sim/strong"),
    ("--task", "gsm8k"),
]


@pytest.mark.parametrize("option", SPELLED_OUT, ids=lambda o: o[0])
def test_spelling_out_a_default_resumes_an_unfinished_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: tuple[str, str]
) -> None:
    manifest, folder = a_run(tmp_path, unfinished=True)
    asked = json.loads((folder / "manifest.json").read_text())["request"]
    status, said = rerun(manifest, folder, capsys, *option)
    assert status == 0, said
    assert "resuming the run" in said and "other settings" not in said
    assert json.loads((folder / "manifest.json").read_text())["request"] == asked  # as it was


@pytest.mark.parametrize("option", SPELLED_OUT, ids=lambda o: o[0])
def test_spelling_out_a_default_finds_a_complete_run_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: tuple[str, str]
) -> None:
    manifest, folder = a_run(tmp_path, unfinished=False)
    before = contents(folder)
    status, said = rerun(manifest, folder, capsys, *option)
    assert status == 0, said
    assert "is complete; nothing to resume" in said
    assert contents(folder) == before


CHANGES = [
    (("--seed", "5"), "seed 5 (it started with 0)"),
    (("--limit", "2"), "2 items (it started with 3)"),
    (("--model", "sim/weak"), "models solver=sim/weak (it started with solver=sim/strong)"),
    (
        ("--role-model", "solver=sim/medium"),
        "models solver=sim/medium (it started with solver=sim/strong)",
    ),
]


@pytest.mark.parametrize(("option", "named"), CHANGES, ids=[c[0][0] for c in CHANGES])
def test_a_changed_setting_on_an_unfinished_run_is_refused_with_both_values(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: tuple[str, str],
    named: str,
) -> None:
    manifest, folder = a_run(tmp_path, unfinished=True)
    before = contents(folder)
    status, said = rerun(manifest, folder, capsys, *option)
    assert status == 2, said
    assert f"{folder} holds an unfinished run started with other settings" in said
    assert named in said and f"--resume {folder}" in said
    assert contents(folder) == before


@pytest.mark.parametrize(("option", "named"), CHANGES, ids=[c[0][0] for c in CHANGES])
def test_a_changed_setting_on_a_complete_run_says_it_is_complete(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: tuple[str, str],
    named: str,
) -> None:
    manifest, folder = a_run(tmp_path, unfinished=False)
    before = contents(folder)
    status, said = rerun(manifest, folder, capsys, *option)
    assert status == 2, said
    assert f"the run in {folder} is complete" in said and "unfinished" not in said
    assert named in said and "choose a new --out folder" in said
    assert contents(folder) == before


@pytest.mark.parametrize("unfinished", [False, True], ids=["complete", "unfinished"])
@pytest.mark.parametrize("edited", ["bare.yaml", "rerun.yaml"])
def test_an_edited_spec_is_named_and_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    unfinished: bool,
    edited: str,
) -> None:
    """Complete or not, a run of files edited since is refused with the same status (2),
    naming the file; the complete one says so rather than that there is nothing to do."""
    manifest, folder = a_run(tmp_path, unfinished=unfinished)
    before = contents(folder)
    spec = tmp_path / edited
    if edited == "bare.yaml":
        spec.write_text(spec.read_text().replace("step by step", "carefully, step by step"))
    else:
        spec.write_text(spec.read_text() + "parsing: tolerant\n")
    for options in ((), ("--resume", str(folder))):
        if options:
            capsys.readouterr()
            status, said = main(["run", *options]), capsys.readouterr().err
        else:
            status, said = rerun(manifest, folder, capsys)
        assert status == 2, said
        assert str(spec) in said and "nothing to resume" not in said
        what = "institution" if edited == "bare.yaml" else "manifest"
        if unfinished:
            assert f"the {what} changed since the run started" in said
        else:
            assert f"the run in {folder} is complete, but the {what} changed since it ran" in said
        assert contents(folder) == before
