"""Checks the hand-written GSM8K-style sample in tasks/gsm8k_sample.jsonl."""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "tasks" / "gsm8k_sample.jsonl"
FINAL = re.compile(r"^#### (-?[0-9]+(?:\.[0-9]+)?)$")
CALC = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate(node: ast.AST) -> float:
    """Evaluate numbers, + - * / and parentheses; refuse anything else."""
    if isinstance(node, ast.Expression):
        return evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        return BINARY[type(node.op)](evaluate(node.left), evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    raise ValueError(f"disallowed expression: {ast.dump(node)}")


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def load() -> list[dict[str, str]]:
    lines = DATA.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


RECORDS = load()


def test_enough_unique_problems() -> None:
    assert len(RECORDS) >= 30
    questions = [r["question"] for r in RECORDS]
    assert len(set(questions)) == len(questions)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r["question"][:40])
def test_record(record: dict[str, str]) -> None:
    assert set(record) == {"question", "answer"}
    assert all(isinstance(v, str) and v.strip() for v in record.values())
    final = FINAL.match(record["answer"].splitlines()[-1])
    assert final, "answer must end with '#### N'"
    calcs = CALC.findall(record["answer"])
    assert calcs, "answer has no <<expr=result>> annotations"
    for expr, result in calcs:
        got = evaluate(ast.parse(expr, mode="eval"))
        assert close(got, float(result)), f"<<{expr}={result}>> evaluates to {got}"
    assert close(float(final.group(1)), float(calcs[-1][1]))


def test_the_sample_gives_the_same_ids_however_its_path_is_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An experiment planned with `--data tasks/gsm8k_sample.jsonl` and run with the resolved
    path must see the same items (every cell was refused as changed)."""
    from govern.tasks.gsm8k import GSM8K, SAMPLE

    monkeypatch.chdir(SAMPLE.parents[1])
    link = tmp_path / "elsewhere.jsonl"
    link.symlink_to(SAMPLE)
    ids = [
        [i.id for i in GSM8K().load(path).items]
        for path in (Path("tasks/gsm8k_sample.jsonl"), SAMPLE, link)
    ]
    assert ids[0] == ids[1] == ids[2] and ids[0][0] == "sample/0000"
