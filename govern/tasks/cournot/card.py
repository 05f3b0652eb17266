"""The Cournot task card (``tasks/cournot.yaml``): the market's parameters and where they
come from, read with the spec loader, so a wrong value is a FILE:LINE:COL error."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from govern.spec.validation import validate_data
from govern.spec.yaml_source import read_yaml
from govern.tasks.cournot.market import MarketParams

CARD = Path(__file__).resolve().parents[3] / "tasks" / "cournot.yaml"


class CournotCard(BaseModel):
    """A task card: which task, its parameters, and their provenance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["task_card"]
    task: Literal["cournot"]
    source: str = Field(min_length=1, description="where the parameters come from")
    market: MarketParams


def load_card(path: Path = CARD) -> CournotCard:
    """The card at ``path``; raises SpecInvalid with every error at its line."""
    source = read_yaml(path)
    return validate_data(CournotCard, source.data, source)
