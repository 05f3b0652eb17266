"""The command line, run as a user runs it: a subprocess, exit codes, output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from govern.cli import PATTERNS
from tests.conftest import ROOT, TINY, spec_errors, write
from tests.conftest import run_cli as govern


def test_validate_shipped_specs_exits_0() -> None:
    result = govern("validate", "institutions", "manifests/senate.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "17 valid, 0 invalid" in result.stderr  # first_edition/, markets/, maker/ included


def test_validate_bad_file_prints_error_lines_and_exits_1(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", TINY.replace("entry: write", "entry: wirte"))
    good = write(tmp_path, "good.yaml", TINY)
    result = govern("validate", str(good), str(bad))
    assert result.returncode == 1
    assert f"{bad}:13:1: error: no stage 'wirte'" in result.stdout
    assert "Traceback" not in result.stderr
    assert "1 valid, 1 invalid" in result.stderr


def test_validate_missing_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    result = govern("validate", str(tmp_path / "absent.yaml"))
    assert result.returncode == 1
    assert "absent.yaml:1:1: error: no such file" in result.stdout
    assert "Traceback" not in result.stderr


def test_validate_json_report(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", TINY.replace("role: writer", "role: wrtier"))
    result = govern("validate", "--json", str(bad), "institutions/bare.yaml")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["valid"] is False
    bad_report, good_report = report["files"]
    assert bad_report["errors"][0]["line"] == 17
    assert good_report == {
        "file": "institutions/bare.yaml",
        "valid": True,
        "kind": "institution",
        "errors": [],
    }


def test_help_and_validate_do_not_import_langgraph_or_litellm() -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from govern.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    main(['validate', 'institutions', 'manifests'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'langgraph', 'litellm'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_graph_shows_kinds_and_decisions(fmt: str) -> None:
    result = govern("graph", "manifests/senate.yaml", "--format", fmt)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "division" in out and "vote" in out and "veto" in out
    if fmt == "mermaid":
        assert out.startswith("flowchart TD")
        assert 'division -->|"pass"| intercession' in out
        assert "division{{" in out  # votes are hexagons
    else:
        assert out.startswith('digraph "roman_senate"')
        assert 'division -> intercession [label="pass"]' in out
        assert "division [shape=hexagon" in out


def test_graph_on_an_invalid_file_exits_1_with_the_error(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", TINY.replace("kind: review", "kind: reveiw"))
    result = govern("graph", str(bad))
    assert result.returncode == 1
    assert f"{bad}:21:11: error: unknown stage kind 'reveiw'" in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_json_gives_the_fingerprint() -> None:
    result = govern("inspect", "institutions/tang.yaml", "manifests/senate.yaml", "--json")
    tang, senate = json.loads(result.stdout)
    assert tang["institution"] == "tang" and tang["pattern"] == "gated_pipeline"
    assert tang["fingerprint"]["gates"] == 1 and tang["fingerprint"]["roles"] == 9
    assert senate["institution"] == "roman_senate"


def test_inspect_table_compares_institutions() -> None:
    result = govern("inspect", "institutions")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert any("us_federal" in line and "gated_pipeline" in line for line in lines)
    # 6 pipelines (first_edition/qin_han and markets/cournot_market among them), 2 gated
    assert sum("pipeline" in line for line in lines) == 11


@pytest.mark.parametrize("pattern", PATTERNS)
def test_new_institution_validates_as_written(pattern: str, tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "govern.schema.json").write_text("{}")
    out = tmp_path / "institutions" / "mine.yaml"
    result = govern("new", "institution", "My Republic", "--pattern", pattern, "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schemas/govern.schema.json")
    assert "id: my_republic" in text and f"pattern: {pattern}" in text
    assert spec_errors(out) == []
    stdout_version = govern("new", "institution", "My Republic", "--pattern", pattern)
    assert spec_errors(write(tmp_path, "stdout.yaml", stdout_version.stdout)) == []


def test_new_refuses_to_overwrite(tmp_path: Path) -> None:
    out = write(tmp_path, "taken.yaml", "keep me")
    result = govern("new", "institution", "X", "--pattern", "pipeline", "--out", str(out))
    assert result.returncode == 2 and "already exists" in result.stderr
    assert out.read_text() == "keep me"


def test_schema_command_writes_the_shipped_schema(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert govern("schema", "--out", str(out)).returncode == 0
    assert json.loads(out.read_text()) == json.loads(
        (ROOT / "schemas" / "govern.schema.json").read_text()
    )


def test_list_finds_institutions_and_manifests() -> None:
    result = govern("list")
    lines = result.stdout.splitlines()
    assert sum(line.startswith("institution ") for line in lines) == 16
    assert any(line.startswith("manifest") and "senate" in line for line in lines)
    assert any(line.startswith("task") and "gsm8k" in line for line in lines)


def test_list_marks_invalid_files(project: Path) -> None:
    write(project / "institutions", "broken.yaml", TINY.replace("entry: write", "entry: x"))
    result = govern("list", cwd=project)
    assert "invalid" in result.stdout and "broken.yaml:13:1: error" in result.stdout


@pytest.mark.parametrize("command", ["validate", "inspect"])
def test_a_folder_without_specs_is_a_usage_error(command: str, tmp_path: Path) -> None:
    result = govern(command, str(tmp_path))
    assert result.returncode == 2
    assert "no .yaml or .yml files in the folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_reads_yml_files_in_folders(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", TINY)
    result = govern("validate", str(tmp_path))
    assert result.returncode == 0 and "1 valid, 0 invalid" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert govern("frobnicate").returncode == 2
    assert govern("new", "institution", "X", "--pattern", "anarchy").returncode == 2
