"""The task ``cournot``: markets to play, not questions to answer.

Each item of a run is one repeated market (``market-1``, ``market-2``, ...), played for the
task card's rounds by the firms the manifest's models name (``run/market.py``). The card
is ``tasks/cournot.yaml`` unless ``--data`` names another card. How many markets a run
plays is the manifest's ``task.limit`` (or ``--limit``); one by default.
"""

from __future__ import annotations

from pathlib import Path

from govern.spec.errors import SpecInvalid
from govern.tasks.base import TaskData, TaskDataError, TaskItem
from govern.tasks.cournot.card import CARD, CournotCard, load_card
from govern.text import printable

MARKETS = 1  # markets a run plays when neither --limit nor task.limit says


class CournotTask:
    name = "cournot"
    description = "the repeated Cournot market (2 firms x 2 commodities, 50 rounds)"

    def __init__(self) -> None:
        self.card: CournotCard | None = None

    def load(self, data: Path | None, *, allow_download: bool = False) -> TaskData:
        path = data or CARD
        try:
            self.card = load_card(path)
        except FileNotFoundError:
            raise TaskDataError(f"Cournot task card not found: {printable(path)}") from None
        except SpecInvalid as exc:
            raise TaskDataError(str(exc)) from None
        return TaskData(self.markets(MARKETS), f"task card {printable(path)}", benchmark=False)

    def markets(self, count: int) -> list[TaskItem]:
        """The first ``count`` markets (a run's ``--limit``)."""
        assert self.card is not None, "load the card first"
        market = self.card.market
        question = (
            f"{market.firms} firms x {market.commodities} commodities, {market.rounds} rounds"
        )
        return [TaskItem(f"market-{n}", question, None) for n in range(1, count + 1)]
