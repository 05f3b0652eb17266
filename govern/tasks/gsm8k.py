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
from decimal import Decimal, InvalidOperation
from pathlib import Path

import structlog

from govern.tasks.base import Score, TaskData, TaskDataError, TaskItem

log = structlog.get_logger()

OFFICIAL_URL = (
    "https://raw.githubusercontent.com/openai/grade-school-math/master/"
    "grade_school_math/data/test.jsonl"
)
OFFICIAL_SHA256 = "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"
OFFICIAL_SIZE = 1319
SAMPLE = Path(__file__).resolve().parents[2] / "tasks" / "gsm8k_sample.jsonl"

STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def normalise(number: str) -> str | None:
    """'$1,234.' -> '1234'; None when it is not a number."""
    cleaned = number.replace(",", "").replace("$", "").rstrip(".").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def cache_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "govern" / "gsm8k" / "test.jsonl"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class GSM8K:
    name = "gsm8k"
    description = "grade-school maths word problems (official test split: 1,319)"
    answer_format = (
        "Reason step by step, then give the final answer as a number on a last line of the "
        "form `#### <number>`."
    )

    def load(self, data: Path | None, *, allow_download: bool = False) -> TaskData:
        if data is not None:
            return self._read(data, "--data")
        env = os.environ.get("GOVERN_GSM8K")
        if env:
            return self._read(Path(env), "GOVERN_GSM8K")
        cached = cache_path()
        if cached.is_file() and sha256_of(cached) == OFFICIAL_SHA256:
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
        if not path.is_file():
            raise TaskDataError(f"GSM8K data from {how} not found: {path}")
        official = sha256_of(path) == OFFICIAL_SHA256
        prefix = "gsm8k/test" if official else ("sample" if path == SAMPLE else path.stem)
        items = []
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    question, answer = record["question"], record["answer"]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise TaskDataError(
                        f"{path}:{number}: not a GSM8K line ({exc}); expected JSON with "
                        "'question' and 'answer'"
                    ) from None
                gold = answer.split("####")[-1] if "####" in answer else None
                items.append(
                    TaskItem(
                        f"{prefix}/{len(items):04d}", question, normalise(gold) if gold else None
                    )
                )
        source = f"{path} ({'official GSM8K test split, sha256 verified' if official else how})"
        return TaskData(items, source, benchmark=official)

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
        partial = target.with_suffix(".partial")
        partial.write_bytes(body)
        partial.replace(target)
        return target

    def parse_answer(self, text: str) -> str | None:
        match = STRICT.search(text)
        return normalise(match.group(1)) if match else None

    def score(self, text: str | None, gold: str | None) -> Score:
        strict = self.parse_answer(text) if text else None
        flexible = None
        if text:
            matches = [m.group(0) for m in FLEXIBLE.finditer(text)]
            for candidate in reversed(matches):
                flexible = normalise(candidate)
                if flexible is not None:
                    break
        return Score(
            strict=strict,
            flexible=flexible,
            correct_strict=gold is not None and strict == gold,
            correct_flexible=gold is not None and flexible == gold,
        )
