"""The office book: who holds each office, since when, and for how long.

An office (a role with ``office: {term}``) is not re-filled on every item: the agents
sitting in the seats a lot drew or an election chose hold it across items until their
term (counted in finished items, like every other time of the Controller) is over, or
a sanction bars one of them. The Controller owns the book and writes what happens to it
to the ledger; the book only keeps the record, so that it can be snapshot and restored
with the rest of the Controller's state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from govern.spec.models import Institution

Term = int | Literal["run"]


@dataclass
class Tenure:
    """One filling of an office: the holders (agents, in seat order), the seats they were
    chosen in, the stage and item that chose them, and the items clock at that moment."""

    holders: list[str]
    seats: list[str]
    by: str
    item: str
    since: int

    def served(self, clock: int) -> int:
        return clock - self.since


class OfficeBook:
    """Every office of an institution, held or vacant."""

    def __init__(self, institution: Institution) -> None:
        self.terms: dict[str, Term] = {
            role.id: role.office.term for role in institution.roles if role.office is not None
        }
        self.tenures: dict[str, Tenure] = {}  # office -> its tenure; absent: vacant

    def is_office(self, role: str) -> bool:
        return role in self.terms

    def holders(self, office: str) -> list[str]:
        tenure = self.tenures.get(office)
        return list(tenure.holders) if tenure is not None else []

    def fill(self, office: str, tenure: Tenure) -> bool:
        """Seat ``tenure`` in a vacant office; False (nothing changes) if it is held."""
        if office in self.tenures:
            return False
        self.tenures[office] = tenure
        return True

    def expire(self, clock: int) -> list[tuple[str, Tenure]]:
        """Vacate every office whose holders have served their term by ``clock``."""
        over = [
            (office, tenure)
            for office, tenure in self.tenures.items()
            if self.terms[office] != "run" and tenure.served(clock) >= self.terms[office]
        ]
        for office, _ in over:
            del self.tenures[office]
        return over

    def remove(self, agent: str) -> list[tuple[str, Tenure]]:
        """Vacate every office ``agent`` holds (a sanction barred or replaced it)."""
        held = [(o, t) for o, t in self.tenures.items() if agent in t.holders]
        for office, _ in held:
            del self.tenures[office]
        return held

    def snapshot(self) -> dict[str, Any]:
        return {office: asdict(tenure) for office, tenure in self.tenures.items()}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.tenures = {office: Tenure(**fields) for office, fields in snapshot.items()}
