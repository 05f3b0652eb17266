"""The command line's contract with its user: numbers are checked, any path the user
gives fails with one clear line (never a traceback, never a hang), and the exit
status says what kind of failure it was: 1 invalid, 2 usage, 70 a bug, 141 a
closed pipe. Nothing here may block: every subprocess has a short timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from govern import cli
from govern.cli import build_parser, main, non_negative_int, positive_int
from govern.tasks.base import TaskDataError
from govern.tasks.gsm8k import GSM8K
from govern.text import printable
from tests.conftest import ROOT, TEST_KEYS, TINY, clean_environment, spec_errors, write

FF = os.fsdecode(b"\xff")  # a file name byte that is not UTF-8, as Python sees it
RECORD = '{"question": "What is 2 + 3?", "answer": "2 + 3 = 5\\n#### 5"}\n'


def govern(*args: str | bytes, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    """`govern ARGS` as a user runs it; bytes arguments are file names that are not UTF-8."""
    result = subprocess.run(
        [sys.executable, "-m", "govern.cli", *args],
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
        env=clean_environment(**TEST_KEYS, **env),
        check=False,
    )
    result.stdout = result.stdout.decode("utf-8")  # strict: the output is valid UTF-8
    result.stderr = result.stderr.decode("utf-8")
    return result


def assert_usage_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


# Numbers ----------------------------------------------------------------------------


SENATE = ["run", "manifests/senate.yaml"]
AT_LEAST_1 = "expected a whole number of at least 1, got"
AT_LEAST_0 = "expected a whole number of at least 0, got"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*SENATE, "--limit", "0"], f"--limit: {AT_LEAST_1} 0"),
        ([*SENATE, "--limit", "-1"], f"--limit: {AT_LEAST_1} -1"),
        ([*SENATE, "--limit", "1.5"], f"--limit: {AT_LEAST_1} '1.5'"),
        ([*SENATE, "--limit", "ten"], f"--limit: {AT_LEAST_1} 'ten'"),
        ([*SENATE, "--concurrency", "0"], f"--concurrency: {AT_LEAST_1} 0"),
        ([*SENATE, "--concurrency", "-1"], f"--concurrency: {AT_LEAST_1} -1"),
        ([*SENATE, "--seed", "-1"], f"--seed: {AT_LEAST_0} -1"),
        ([*SENATE, "--seed", "0x10"], f"--seed: {AT_LEAST_0} '0x10'"),
        (["audit", "runs", "--prove", "-1"], f"--prove: {AT_LEAST_0} -1"),
    ],
)
def test_a_number_out_of_range_is_refused_before_anything_runs(
    args: list[str], message: str
) -> None:
    result = govern(*args, timeout=30)
    assert_usage_error(result, message)


@pytest.mark.parametrize("text", ["1", "8", " 12 ", "1319", "+3"])
def test_positive_int_takes_whole_numbers_from_1(text: str) -> None:
    assert positive_int(text) == int(text)


@pytest.mark.parametrize("text", ["0", "-1", "1.0", "1e3", "", "one", "0x1"])
def test_positive_int_refuses_the_rest(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int(text)


def test_non_negative_int_takes_0_and_refuses_negatives() -> None:
    assert non_negative_int("0") == 0 and non_negative_int("42") == 42
    with pytest.raises(argparse.ArgumentTypeError):
        non_negative_int("-1")


def test_every_numeric_option_is_range_checked() -> None:
    """No option of any command takes a bare int: each says what range it accepts."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.type not in (int, float), f"govern {name} {action.option_strings}"


def test_limit_runs_exactly_that_many_items(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = govern(
        "run", "institutions/bare.yaml", "--task", "gsm8k", "--limit", "1", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "summary.json").read_text())["n"] == 1


# --out ------------------------------------------------------------------------------


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` made unwritable even for root (immutable), or the test is skipped."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("running as root where chattr +i is not available: nothing is read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


RUN = ["run", "institutions/bare.yaml", "--task", "gsm8k", "--limit", "1", "--out"]


def test_run_out_on_an_existing_file_is_refused(tmp_path: Path) -> None:
    taken = write(tmp_path, "taken", "keep me")
    assert_usage_error(govern(*RUN, str(taken)), "exists and is not a folder")
    assert taken.read_text() == "keep me"


def test_run_out_on_a_fifo_or_a_dangling_link_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    assert_usage_error(govern(*RUN, str(tmp_path / "fifo"), timeout=30), "is not a folder")
    assert_usage_error(govern(*RUN, str(tmp_path / "link")), "is not a folder")


def test_run_out_in_a_read_only_folder_is_refused_before_the_run(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        assert_usage_error(govern(*RUN, str(folder)), f"cannot write in the run folder {folder}")
        assert_usage_error(govern(*RUN, str(folder / "sub")), "cannot create the run folder")


def test_run_out_under_a_file_is_refused(tmp_path: Path) -> None:
    file = write(tmp_path, "file", "")
    assert_usage_error(govern(*RUN, str(file / "sub")), "cannot create the run folder")


@pytest.mark.parametrize(
    "command", [["schema"], ["new", "institution", "X", "--pattern", "pipeline"]]
)
def test_out_of_schema_and_new_never_blocks_on_a_fifo_or_writes_a_folder(
    command: list[str], tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "fifo")
    fifo = govern(*command, "--out", str(tmp_path / "fifo"), timeout=30)
    folder = govern(*command, "--out", str(tmp_path))
    under_a_file = govern(*command, "--out", str(write(tmp_path, "f", "") / "x.json"))
    for result in (fifo, folder, under_a_file):
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and result.stderr.startswith("govern: error:")


# --data -----------------------------------------------------------------------------


BAD_DATA = {
    "binary.jsonl": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "binary.jsonl:1: not UTF-8 text"),
    "nulls.jsonl": (b'{"question": null, "answer": null}\n', "('question' is null)"),
    "no_answer.jsonl": (b'{"question": "q"}\n', "(no 'answer')"),
    "number.jsonl": (b'{"question": "q", "answer": 5}\n', "('answer' is 5)"),
    "list.jsonl": (b"[1, 2]\n", "(a JSON list, not an object)"),
    "deep.jsonl": (b"[" * 100_000 + b"\n", "(JSON nested too deeply)"),
    "surrogate.jsonl": (b'{"question": "\\udcff", "answer": "x"}\n', "invalid \\u escape"),
    "broken.jsonl": (RECORD.encode() + b'{"question": \n', "broken.jsonl:2: not a GSM8K line"),
    "empty.jsonl": (b"\n  \n", "has no problems"),
}


@pytest.mark.parametrize("name", sorted(BAD_DATA))
def test_bad_data_is_a_task_data_error_naming_the_line(name: str, tmp_path: Path) -> None:
    content, message = BAD_DATA[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TaskDataError) as caught:
        GSM8K().load(path)
    assert message in str(caught.value)


def test_data_that_is_not_a_regular_file_is_refused_without_reading(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    for path, message in [
        (tmp_path / "fifo", "is not a regular file"),
        (Path("/dev/zero"), "is not a regular file"),
        (tmp_path, "is a folder"),
        (tmp_path / "absent.jsonl", "not found"),
    ]:
        with pytest.raises(TaskDataError, match=message):
            GSM8K().load(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_data_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.jsonl", RECORD)
    path.chmod(0)
    with pytest.raises(TaskDataError, match="cannot read GSM8K data from --data"):
        GSM8K()._read(path, "--data")


def test_run_data_on_a_fifo_fails_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    data = ["run", "institutions/bare.yaml", "--task", "gsm8k", "--data"]
    assert_usage_error(govern(*data, str(tmp_path / "fifo"), timeout=30), "not a regular file")
    fifo_env = govern(*RUN[:-1], GOVERN_GSM8K=str(tmp_path / "fifo"), timeout=30)
    assert_usage_error(fifo_env, "GSM8K data from GOVERN_GSM8K is not a regular file")


@pytest.mark.parametrize("name", ["binary.jsonl", "nulls.jsonl"])
def test_run_on_bad_data_is_one_line_not_a_traceback(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(BAD_DATA[name][0])
    result = govern("run", "institutions/bare.yaml", "--task", "gsm8k", "--data", str(path))
    assert_usage_error(result, BAD_DATA[name][1])


# File names that are not UTF-8 ------------------------------------------------------


def test_printable_escapes_what_utf8_cannot_encode_and_keeps_the_rest() -> None:
    assert printable(f"{FF}.yaml") == "\\udcff.yaml"
    assert printable("café ≤ 3") == "café ≤ 3"
    assert printable(Path("a") / FF) == "a/\\udcff"


def test_a_non_utf8_file_name_is_printed_escaped(tmp_path: Path) -> None:
    missing = os.fsencode(tmp_path) + b"/\xff.yaml"
    result = govern("validate", missing)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "\\udcff.yaml:1:1: error: no such file" in result.stdout


def test_new_writes_a_non_utf8_file_name_and_escapes_it_in_the_text(tmp_path: Path) -> None:
    spec = os.fsencode(tmp_path) + b"/\xff.yaml"
    made = govern("new", "institution", b"\xffland", "--pattern", "pipeline", "--out", spec)
    assert made.returncode == 0, made.stderr
    assert "\\udcff.yaml" in made.stderr
    written = Path(os.fsdecode(spec))
    assert 'name: "\\\\udcffland"' in written.read_text(encoding="utf-8")
    assert spec_errors(written) == []
    assert yaml.safe_load(written.read_text(encoding="utf-8"))["name"] == "\\udcffland"


def test_run_reads_data_with_a_non_utf8_name(tmp_path: Path) -> None:
    data = os.fsencode(tmp_path) + b"/\xff.jsonl"
    Path(os.fsdecode(data)).write_text(RECORD, encoding="utf-8")
    out = tmp_path / "run"
    ran = govern(
        "run", "institutions/bare.yaml", "--task", "gsm8k", "--data", data, "--out", str(out)
    )
    assert ran.returncode == 0, ran.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 1 and "\\udcff.jsonl" in summary["data_source"]


@pytest.mark.parametrize("where", ["manifest", "out"])
def test_run_takes_a_non_utf8_manifest_path_or_out_folder(where: str, tmp_path: Path) -> None:
    spec = (ROOT / "institutions" / "bare.yaml").read_bytes()
    manifest = os.fsencode(tmp_path) + (b"/\xff.yaml" if where == "manifest" else b"/m.yaml")
    Path(os.fsdecode(manifest)).write_bytes(spec)
    out = os.fsencode(tmp_path) + (b"/\xffrun" if where == "out" else b"/run")
    ran = govern("run", manifest, "--task", "gsm8k", "--limit", "1", "--out", out)
    assert ran.returncode == 0, ran.stderr


# Exit status ------------------------------------------------------------------------


def _handler_raising(exc: BaseException):
    def handler(args: argparse.Namespace) -> int:
        raise exc

    return handler


def test_an_unexpected_exception_is_reported_as_a_bug_with_status_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "cmd_list", _handler_raising(RuntimeError("boom")))
    assert main(["list"]) == 70
    err = capsys.readouterr().err
    assert err.startswith(
        "govern: internal error (a bug in govern, please report it): RuntimeError: boom"
    )
    assert "Traceback (most recent call last)" in err and "raise exc" in err


def test_an_os_error_on_a_named_file_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    denied = PermissionError(13, "Permission denied", "/some/file")
    monkeypatch.setattr(cli, "cmd_list", _handler_raising(denied))
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert err == "govern: error: cannot use /some/file: Permission denied\n"


def test_a_closed_standard_output_ends_quietly_with_141(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before govern writes a byte
    try:
        result = subprocess.run(
            [sys.executable, "-m", "govern.cli", "schema"],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=clean_environment(),
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141 and result.stderr == ""


def test_exit_codes_are_documented_in_the_readme() -> None:
    errors = (ROOT / "README.md").read_text().split("## Errors", 1)[1].split("\n## ", 1)[0]
    statuses = [cli.EXIT_OK, cli.EXIT_INVALID, cli.EXIT_USAGE, cli.EXIT_INTERNAL]
    statuses += [cli.EXIT_INTERRUPTED, cli.EXIT_BROKEN_PIPE, 143]  # 143: govern run on SIGTERM
    for status in statuses:
        assert f"| {status} |" in errors
    assert "govern: internal error (a bug in govern, please report it)" in errors


# Time to first error ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["run", "absent.yaml", "--task", "gsm8k"],
        ["run", "BAD", "--task", "gsm8k"],
        ["run", "manifests/senate.yaml", "--task", "nope"],
        ["run", "manifests/senate.yaml", "--task", "gsm8k", "--limit", "0"],
        ["run", "manifests/senate.yaml", "--task", "gsm8k", "--data", "absent.jsonl"],
        ["run", "manifests/senate.yaml", "--task", "gsm8k", "--out", "README.md"],
    ],
    ids=["no manifest", "invalid manifest", "bad task", "limit 0", "no data", "out on a file"],
)
def test_a_failing_run_fails_before_importing_langgraph_or_litellm(
    args: list[str], tmp_path: Path
) -> None:
    """What makes `govern run` on bad input take seconds: importing the engine first.
    The benchmark benchmarks/time_to_first_error.py measures the time itself."""
    bad = write(tmp_path, "bad.yaml", TINY.replace("entry: write", "entry: nowhere"))
    args = [str(bad) if a == "BAD" else a for a in args]
    probe = (
        "import sys, contextlib, io\n"
        "from govern.cli import main\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        status = main({args!r})\n"
        "    except SystemExit as exc:\n"
        "        status = exc.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'langgraph', 'litellm'})\n"
        "print(status, heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment(**TEST_KEYS),
        check=True,
    )
    status, heavy = result.stdout.split(" ", 1)
    assert status in ("1", "2") and heavy.strip() == "[]", result.stdout + result.stderr
