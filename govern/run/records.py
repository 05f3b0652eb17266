"""One line of results.jsonl per item, built from its final state and score."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from govern.ledger.binding import line_digest
from govern.tasks.base import Task, TaskItem

ANSWERING = ("solve", "revise", "integrate")  # the acts whose output is an answer


def item_record(
    task: Task, item: TaskItem, state: dict[str, Any], latency: float, simulated: bool
) -> dict[str, Any]:
    candidate = state.get("candidate")
    delivered = candidate["text"] if candidate and state.get("outcome") == "completed" else None
    score = task.score(delivered, item.gold)
    if state.get("outcome") == "no_answer":
        # No answer parsed, yet the flexible reading (lm-evaluation-harness's) is of the
        # raw final output: the last answering turn's text.
        raw = next(
            (t["text"] for t in reversed(state.get("turns", [])) if t["act"] in ANSWERING), None
        )
        flexible = task.score(raw, item.gold)
        score = replace(
            score,
            flexible=flexible.flexible,
            correct_flexible=flexible.correct_flexible,
        )
    return {
        "id": item.id,
        "gold": item.gold,
        "prediction_strict": score.strict,
        "prediction_flexible": score.flexible,
        "correct_strict": score.correct_strict,
        "correct_flexible": score.correct_flexible,
        "outcome": state.get("outcome"),
        "path": state.get("path", []),
        "calls": state.get("calls", 0),
        "failed_attempts": state.get("failed_attempts", 0),
        "prompt_tokens": state.get("prompt_tokens", 0),
        "completion_tokens": state.get("completion_tokens", 0),
        "cost": None if state.get("unknown_cost_calls") else state.get("cost", 0.0),
        "latency": round(latency, 6),
        "unparsable": state.get("unparsable", 0),
        "reasks": reask_calls(state.get("turns", [])),
        "errors": state.get("errors", []),
        "simulated": simulated,
        "final_text": delivered,
        "turns": state.get("turns", []),
        **({"maker": state["maker"]} if state.get("maker") else {}),
    }


def reask_calls(turns: list[dict[str, Any]]) -> int:
    """Calls that asked an unparsable output again for its format, failed ones included."""
    return sum(bool(t.get("reask")) + ("reask_error" in t) for t in turns)


def failed_record(item: TaskItem, error: str, latency: float, simulated: bool) -> dict[str, Any]:
    """An item whose run raised: kept, with the error, so nothing is silently dropped."""
    return {
        "id": item.id,
        "gold": item.gold,
        "prediction_strict": None,
        "prediction_flexible": None,
        "correct_strict": False,
        "correct_flexible": False,
        "outcome": "error",
        "path": [],
        "calls": 0,
        "failed_attempts": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": 0.0,
        "latency": round(latency, 6),
        "unparsable": 0,
        "reasks": 0,
        "errors": [error],
        "simulated": simulated,
        "final_text": None,
        "turns": [],
    }


_LINE = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps' text, the encoder made once


class ResultsWriter:
    """Appends one JSON line per finished item (or an item's lines, as the tracer's events)
    and flushes it, so a crash loses nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("ab")

    def write(self, record: dict[str, Any]) -> str:
        """Append the record's line and flush it; returns the line's digest for the ledger."""
        line = _LINE(record).encode("utf-8")
        self._file.write(line + b"\n")
        self._file.flush()
        return line_digest(line)

    def write_all(self, records: list[dict[str, Any]]) -> None:
        """Append several records' lines at once, flushed together."""
        if records:
            self._file.write(b"".join(_LINE(r).encode("utf-8") + b"\n" for r in records))
            self._file.flush()

    def close(self) -> None:
        self._file.close()
