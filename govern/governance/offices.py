"""The office book: who holds each office, since when, and for how long.

An office (a role with ``office: {term}``) is not re-filled on every item: the agents
sitting in the seats a lot drew or an election chose hold it across items until their
term (counted in finished items, like every other time of the Controller) is over, or
a sanction bars one of them. The Controller owns the book and writes what happens to it
to the ledger; the book only keeps the record, so that it can be snapshot and restored
with the rest of the Controller's state.
"""

from __future__ import annotations

import asyncio
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
        # office -> the item now filling it, and what the other items in flight wait on: with
        # several items in flight, a vacant office is filled by one election, not by each
        self.filling: dict[str, str] = {}
        self.bound: dict[str, dict[str, list[str]]] = {}  # item in flight -> office -> holders
        self._settled: dict[str, asyncio.Event] = {}

    def claim(self, office: str, item: str) -> bool | None:
        """Whether ``item`` must fill the vacant ``office`` (True), finds it held (False), or
        must wait for the item already filling it (None).

        An item that is filling an office itself never waits: it fills this one too (if the
        other item fills it first, its own choice is recorded as not applied). Only items
        that fill nothing wait, and they wait on items that never wait, so two items filling
        two offices in opposite orders cannot wait on each other for ever."""
        if office in self.tenures:
            return False
        filler = self.filling.setdefault(office, item)
        if filler == item or item in self.filling.values():
            return True
        return None

    async def settled(self, office: str) -> None:
        """Until the item filling ``office`` has filled it or ended without doing so."""
        event = self._settled.setdefault(office, asyncio.Event())
        await event.wait()

    def release(self, office: str) -> None:
        """The filling of ``office`` is over: whoever waits on it looks again."""
        self.filling.pop(office, None)
        event = self._settled.pop(office, None)
        if event is not None:
            event.set()

    def release_item(self, item: str) -> None:
        """An item ended: any office it was filling (and did not fill) is free to fill, and
        the holders it found are no longer its own."""
        self.bound.pop(item, None)
        for office in [o for o, filler in self.filling.items() if filler == item]:
            self.release(office)

    def is_office(self, role: str) -> bool:
        return role in self.terms

    def holders(self, office: str, item: str | None = None) -> list[str]:
        """The office's holders: those ``item`` found in office, if it has found some (an
        item keeps them to its end, so a term that ends meanwhile does not leave it without
        a magistrate halfway), else the current ones."""
        bound = self.bound.get(item, {}).get(office) if item is not None else None
        if bound is not None:
            return list(bound)
        tenure = self.tenures.get(office)
        return list(tenure.holders) if tenure is not None else []

    def bind(self, office: str, item: str) -> None:
        """``item`` has found ``office`` held (or filled it): its holders act for that item."""
        tenure = self.tenures.get(office)
        if tenure is not None:
            self.bound.setdefault(item, {})[office] = list(tenure.holders)

    def fill(self, office: str, tenure: Tenure) -> bool:
        """Seat ``tenure`` in a vacant office; False (nothing changes) if it is held."""
        if office in self.tenures:
            return False
        self.tenures[office] = tenure
        self.release(office)
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
