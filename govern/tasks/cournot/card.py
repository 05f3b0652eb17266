"""The Cournot task card (``tasks/cournot.yaml``): the market's parameters and where they
come from, read with the spec loader, so a wrong value is a FILE:LINE:COL error."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

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

    @model_validator(mode="after")
    def _measurable(self) -> CournotCard:
        """A run is judged against the market's Cournot-Nash benchmark: the card must have
        one the measures can use."""
        market = self.market
        nash = market.nash_closed_form()
        if (nash <= 0).any() or (nash > market.capacity).any():
            raise ValueError(
                "every firm's Cournot-Nash quantity must be positive and within capacity in "
                f"every commodity (here {np.round(nash, 2).tolist()}): the measures and "
                "signals are judged against it"
            )
        if (nash.std(axis=1) == 0).any():
            raise ValueError(
                "some firm's Cournot-Nash quantities are equal in every commodity (its costs "
                "do not differ): the within-firm CV has no benchmark to exceed, so the "
                "collusion tier is undefined; give each firm a cheaper commodity"
            )
        return self


def load_card(path: Path = CARD) -> CournotCard:
    """The card at ``path``; raises SpecInvalid with every error at its line."""
    source = read_yaml(path)
    return validate_data(CournotCard, source.data, source)
