"""Task names to tasks."""

from __future__ import annotations

from govern.tasks.base import Task
from govern.tasks.cournot.task import CournotTask
from govern.tasks.gsm8k import GSM8K
from govern.tasks.hanoi.task import HanoiTask

TASKS: dict[str, type] = {"gsm8k": GSM8K, "cournot": CournotTask, "hanoi": HanoiTask}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise KeyError(f"unknown task '{name}'; known tasks: {', '.join(sorted(TASKS))}") from None
