"""GSM8K: lm-evaluation-harness scoring and the data resolution order."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from govern.tasks.base import TaskDataError
from govern.tasks.gsm8k import GSM8K, OFFICIAL_SHA256, SAMPLE, normalise, sha256_of

TASK = GSM8K()
OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234", "1234"),
        ("$18", "18"),
        ("18.", "18"),
        ("18.00", "18"),
        ("-3", "-3"),
        ("0.50", "0.5"),
        ("abc", None),
    ],
)
def test_normalise(text: str, expected: str | None) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(
    ("text", "strict", "flexible"),
    [
        ("She makes 9 * 2 = 18 dollars.\n#### 18", "18", "18"),
        ("#### 1,000", "1000", "1000"),
        ("so the answer is $1,234.", None, "1234"),
        ("first #### 5 then 7", "5", "7"),
        ("no numbers at all", None, None),
        ("#### $5", None, "5"),  # the strict pattern, like the harness's, takes no dollar sign
    ],
)
def test_strict_and_flexible_extraction(
    text: str, strict: str | None, flexible: str | None
) -> None:
    score = TASK.score(text, "18")
    assert (score.strict, score.flexible) == (strict, flexible)
    assert score.correct_strict == (strict == "18")


def test_nothing_delivered_is_wrong() -> None:
    score = TASK.score(None, "18")
    assert not score.correct_strict and not score.correct_flexible


def test_the_sample_is_the_last_resort_and_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GOVERN_GSM8K", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data = TASK.load(None)
    assert not data.benchmark and data.notice and "NOT the GSM8K benchmark" in data.notice
    assert len(data.items) >= 30 and data.items[0].id == "sample/0000"


def test_explicit_data_wins_and_a_missing_file_is_a_clear_error(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("GOVERN_GSM8K", str(tmp_path / "elsewhere.jsonl"))
    assert TASK.load(SAMPLE).items[0].id == "sample/0000"
    with pytest.raises(TaskDataError, match="GOVERN_GSM8K not found"):
        TASK.load(None)


def test_a_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q"}\n')
    with pytest.raises(TaskDataError, match=r"bad.jsonl:2: not a GSM8K line"):
        TASK.load(bad)


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server for files put in the yielded folder."""
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path), **k
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()


def test_a_download_with_the_wrong_checksum_is_not_used(
    file_server, tmp_path: Path, monkeypatch
) -> None:
    url, folder = file_server
    (folder / "test.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n')
    monkeypatch.delenv("GOVERN_GSM8K", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("GOVERN_GSM8K_URL", f"{url}/test.jsonl")
    data = TASK.load(None, allow_download=True)
    assert not data.benchmark and data.notice
    assert not (tmp_path / "cache" / "govern").exists()


@pytest.mark.skipif(not OFFICIAL.is_file(), reason="the shared GSM8K test split is not here")
def test_the_official_split_downloads_once_then_comes_from_the_cache(
    file_server, tmp_path: Path, monkeypatch
) -> None:
    url, folder = file_server
    (folder / "test.jsonl").write_bytes(OFFICIAL.read_bytes())
    monkeypatch.delenv("GOVERN_GSM8K", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("GOVERN_GSM8K_URL", f"{url}/test.jsonl")
    assert TASK.load(None).notice  # without --download nothing is fetched
    data = TASK.load(None, allow_download=True)
    assert data.benchmark and len(data.items) == 1319 and data.items[0].id == "gsm8k/test/0000"
    cached = tmp_path / "cache" / "govern" / "gsm8k" / "test.jsonl"
    assert sha256_of(cached) == OFFICIAL_SHA256
    (folder / "test.jsonl").unlink()
    assert "cache" in TASK.load(None).source


def test_a_long_number_is_kept_whole_not_rounded_to_28_digits() -> None:
    long = "42.012345678900000000000000000123"
    assert normalise(long) == long
    assert GSM8K().parse_answer(f"So:\n#### {long}") == long
