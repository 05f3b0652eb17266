"""GSM8K: grade-school maths word problems, scored like lm-evaluation-harness.

Data is found in this order: ``--data PATH``; the ``GOVERN_GSM8K`` environment
variable; the cache (``$XDG_CACHE_HOME/govern/gsm8k/test.jsonl``); a download of
the official test split, only when asked (``--download``), checked against its
SHA-256; and otherwise the project's own sample of original problems, with a
notice that it is not the benchmark.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.request
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path

import structlog

from govern.engine.formats import OutputFormat, find_marked
from govern.files import parse_json, write_atomic
from govern.spec.models import ParsingMode
from govern.tasks.base import Score, TaskData, TaskDataError, TaskItem, data_lines, read_data_file
from govern.text import printable

log = structlog.get_logger()

OFFICIAL_URL = (
    "https://raw.githubusercontent.com/openai/grade-school-math/master/"
    "grade_school_math/data/test.jsonl"
)
OFFICIAL_SHA256 = "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"
OFFICIAL_SIZE = 1319
SAMPLE = Path(__file__).resolve().parents[2] / "tasks" / "gsm8k_sample.jsonl"


def _is_sample(path: Path) -> bool:
    """The project's sample however its path is written (relative, through a symlink): the
    same file must give the same item ids."""
    try:
        return os.path.samefile(path, SAMPLE)
    except OSError:
        return False


STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


TOLERANT = re.compile(r"#{2,}\s*(?:answer:?\s*)?[$€£]?\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)\.?"
                      r"(?:\s*[A-Za-z%][A-Za-z%. ]{0,30})?", re.IGNORECASE)  # fmt: skip


def _tolerant_answer(line: str) -> str | None:
    match = TOLERANT.fullmatch(line.strip())
    return normalise(match.group(1)) if match else None


def _last_number(text: str) -> str | None:
    """lm-evaluation-harness's flexible extraction: the last number in the text."""
    for candidate in reversed([m.group(0) for m in FLEXIBLE.finditer(text)]):
        number = normalise(candidate)
        if number is not None:
            return number
    return None


def normalise(number: str) -> str | None:
    """'$1,234.' -> '1234'; None when it is not a number."""
    cleaned = number.replace(",", "").replace("$", "").rstrip(".").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    with localcontext() as exact:  # normalize() rounds to the context's 28 digits otherwise
        exact.prec = max(28, len(cleaned))
        text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def cache_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "govern" / "gsm8k" / "test.jsonl"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_official(path: Path) -> bool:
    """Whether ``path`` holds the official split; an unreadable file does not."""
    try:
        return path.is_file() and sha256_of(path) == OFFICIAL_SHA256
    except OSError:
        return False


def _question_and_answer(line: str) -> tuple[str, str]:
    """The two fields of a GSM8K line; ValueError saying what is wrong with it."""
    try:
        record = parse_json(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at column {exc.colno}") from None
    if not isinstance(record, dict):
        raise ValueError(f"a JSON {type(record).__name__}, not an object")
    fields = []
    for key in ("question", "answer"):
        if key not in record:
            raise ValueError(f"no '{key}'")
        value = record[key]
        if not isinstance(value, str) or not value.strip():
            got = "null" if value is None else ("empty text" if value == "" else repr(value))
            raise ValueError(f"'{key}' is {got}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, written as an escape in the JSON
            raise ValueError(f"'{key}' holds an invalid \\u escape") from None
        fields.append(value)
    return fields[0], fields[1]


class GSM8K:
    name = "gsm8k"
    decomposition = "branches"  # a decompose stage's planner may split a problem
    description = "grade-school maths word problems (official test split: 1,319)"
    answer_format = OutputFormat(
        "Reason step by step, then give the final answer as a number on a last line of the "
        "form `#### <number>`.",
        "`#### <number>`",
    )

    def load(self, data: Path | None, *, allow_download: bool = False) -> TaskData:
        if data is not None:
            return self._read(data, "--data")
        env = os.environ.get("GOVERN_GSM8K")
        if env:
            return self._read(Path(env), "GOVERN_GSM8K")
        cached = cache_path()
        if _is_official(cached):
            return self._read(cached, "cache")
        if allow_download:
            downloaded = self._download(cached)
            if downloaded is not None:
                return self._read(downloaded, "download")
        sample = self._read(SAMPLE, "sample")
        notice = (
            f"GSM8K test split not found: running the project's {len(sample.items)} original "
            "sample problems instead. This is NOT the GSM8K benchmark. Point GOVERN_GSM8K or "
            "--data at the official test.jsonl, or pass --download."
        )
        return TaskData(sample.items, sample.source, benchmark=False, notice=notice)

    def _read(self, path: Path, how: str) -> TaskData:
        raw = read_data_file(path, how, "GSM8K")
        official = hashlib.sha256(raw).hexdigest() == OFFICIAL_SHA256
        stem = printable(path.stem)
        prefix = "gsm8k/test" if official else ("sample" if _is_sample(path) else stem)
        items = []
        for number, line in data_lines(path, raw):
            try:
                question, answer = _question_and_answer(line)
            except ValueError as exc:
                raise TaskDataError(
                    f"{printable(path)}:{number}: not a GSM8K line ({exc}); expected JSON "
                    "with 'question' and 'answer' as text"
                ) from None
            gold = answer.split("####")[-1] if "####" in answer else None
            items.append(
                TaskItem(f"{prefix}/{len(items):04d}", question, normalise(gold) if gold else None)
            )
        if not items:
            raise TaskDataError(
                f"GSM8K data from {how} has no problems: {printable(path)}; expected one JSON "
                "object a line with 'question' and 'answer'"
            )
        what = "official GSM8K test split, sha256 verified" if official else how
        return TaskData(items, f"{printable(path)} ({what})", benchmark=official)

    def _download(self, target: Path) -> Path | None:
        url = os.environ.get("GOVERN_GSM8K_URL", OFFICIAL_URL)
        log.info("downloading GSM8K test split", url=url)
        try:
            with urllib.request.urlopen(url, timeout=20) as response:
                body = response.read()
        except OSError as exc:
            log.warning("GSM8K download failed", error=str(exc))
            return None
        if hashlib.sha256(body).hexdigest() != OFFICIAL_SHA256:
            log.warning("GSM8K download has the wrong SHA-256; not used", url=url)
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, body)
        return target

    def parse_answer(self, text: str, mode: ParsingMode = "strict") -> str | None:
        """strict: ``#### <number>`` as lm-evaluation-harness reads it; tolerant: the marker
        on one of the last lines, with emphasis, a currency sign or a unit around the number;
        flexible: the last number in the output."""
        if mode == "flexible":
            return _last_number(text)
        if mode == "tolerant":
            return find_marked(text, _tolerant_answer, mode, keep_hashes=True)
        match = STRICT.search(text)
        return normalise(match.group(1)) if match else None

    def score(self, text: str | None, gold: str | None) -> Score:
        strict = self.parse_answer(text) if text else None
        flexible = _last_number(text) if text else None
        return Score(
            strict=strict,
            flexible=flexible,
            correct_strict=gold is not None and strict == gold,
            correct_flexible=gold is not None and flexible == gold,
        )
