"""Reading finished results for `govern compare` and `govern report`: nothing here trusts what
it reads.

Two kinds of folder are read:

- an **experiment folder**, as `govern run EXPERIMENT.yaml` writes it: ``experiment.json``
  (what ran, with which command and digests, and its cells), ``results.sqlite`` (the results
  store: one row per finished item of each cell, and each cell's ledger heads) and
  ``cells/<CELL_ID>/``, an ordinary run folder per cell;
- a **run folder**, as `govern run MANIFEST` writes it: ``summary.json``, ``manifest.json``,
  ``results.jsonl`` and ``ledger.head``. It counts as one cell, whose id is made the way an
  experiment makes its cells' ids (the manifest's id, its model, task and seed).

Everything read is checked: sizes are capped, JSON is parsed strictly and validated, a cell
folder must stay inside its experiment folder, the store is opened read-only (never created,
never written, not even its write-ahead log), and its numbers must be numbers. What is wrong
is a `ResultsError` whose message says which file and what to do; its ``usage`` flag marks a
path that names no experiment or run at all (the command's mistake, exit 2) as opposed to
results that are damaged or unusable (exit 1).

Only the scalar columns of each item are read (right or wrong, calls, tokens, cost,
simulated), so a store of 100,000 items loads in a second and never holds the transcripts;
and, for a market (task cournot), its record's ``market`` block without the quantities,
taken out of the stored record by SQLite's JSON functions (`MarketOutcome`).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from govern.experiments.spec import cell_id, model_label
from govern.experiments.store import APPLICATION_ID, SCHEMA_VERSION, SQLITE_MAGIC
from govern.files import NotRegularFile, parse_json, read_regular
from govern.ledger.proofs import head_problem
from govern.models.sim.params import is_firm_model, is_simulated
from govern.run.summary import FIRMS_LABEL, SIMULATED_LABEL
from govern.spec.errors import escape_controls, quoted

EXPERIMENT_FILE = "experiment.json"
STORE_FILE = "results.sqlite"
RUN_FILES = ("summary.json", "manifest.json", "results.jsonl")

# Caps on what one file may hold: far above anything govern writes, far below harm.
JSON_LIMIT = 32 << 20  # experiment.json, manifest.json
SMALL_LIMIT = 1 << 20  # summary.json
HEAD_LIMIT = 64 << 10  # ledger.head
LINE_LIMIT = 32 << 20  # one line of results.jsonl (a record with every turn's full text)
ID_CHARS = 400

Simulated = Literal["yes", "partly", "no"]


class ResultsError(Exception):
    """Results that cannot be read; ``usage``: the path names no experiment or run at all."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def _shown(path: Path | str) -> str:
    return escape_controls(str(path))


# --------------------------------------------------------------------------- data


class _Strict(BaseModel):
    # Unknown keys are allowed (a newer runner may add some); known ones must have their type.
    model_config = ConfigDict(extra="ignore", strict=True)


class MarketTraining(_Strict):
    """How a market's learning firms were trained before it (``firm/q-learning``)."""

    periods: StrictInt = Field(ge=0)
    converged: StrictBool
    seconds: float = Field(ge=0, allow_inf_nan=False)
    cached: StrictBool
    under_regime: StrictBool


class MarketOutcome(_Strict):
    """One market's measures, as its record's ``market`` block holds them (the quantities
    round by round are left in results.jsonl). Lists hold one value a firm."""

    rounds: StrictInt = Field(ge=1)
    firms: dict[StrictStr, StrictStr] = Field(min_length=1)  # seat -> model
    tier: StrictInt = Field(ge=0, le=4)
    hhi: float = Field(allow_inf_nan=False)
    cv: float = Field(allow_inf_nan=False)
    hhi_excess: float = Field(allow_inf_nan=False)
    cv_excess: float = Field(allow_inf_nan=False)
    gross_profit_per_round: list[float]
    profit_per_round: list[float]  # after fines
    consumer_surplus_per_round: float = Field(allow_inf_nan=False)
    fines: list[float]  # over the market
    suspended_rounds: list[StrictInt]
    sanctions: StrictInt = Field(ge=0)
    training: MarketTraining | None

    @model_validator(mode="after")
    def _one_value_a_firm(self) -> MarketOutcome:
        firms = len(self.firms)
        for name in ("gross_profit_per_round", "profit_per_round", "fines", "suspended_rounds"):
            values = getattr(self, name)
            if len(values) != firms:
                raise ValueError(f"'{name}' holds {len(values)} values for {firms} firms")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"'{name}' holds a value that is not a finite number")
        return self


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """One finished item of one cell: what the statistics need, and nothing more."""

    item: str
    correct_strict: bool
    correct_flexible: bool
    calls: int
    tokens: int  # prompt + completion
    cost: float | None  # None: unknown (a price litellm did not know)
    simulated: bool
    failed: bool  # outcome "error": counted as wrong, as the run's own summary counts it
    # a market's measures (task cournot), whose right and wrong mean nothing
    market: MarketOutcome | None = None


@dataclass(frozen=True)
class CellResult:
    """One cell (one run) and its finished items."""

    id: str
    institution: str
    model: str
    task: str
    seed: int
    overlay: str | None
    source: Path  # the experiment or run folder given on the command line
    folder: Path | None  # the cell's run folder, when it exists inside the source
    items: tuple[ItemOutcome, ...]
    ledger_head: dict[str, Any] | None  # the latest recorded head, when it is well-formed
    ledger_note: str | None  # why there is no head to show
    simulated: Simulated
    models: dict[str, str] = field(default_factory=dict)  # role -> model, as recorded
    status: str | None = None
    planned: int | None = None  # items the cell is to run, when recorded

    @property
    def firms_only(self) -> bool:
        """Every role ran one of govern's built-in firms (firm/...), as recorded."""
        models = set(self.models.values()) | {
            m for i in self.items if i.market is not None for m in i.market.firms.values()
        }
        return bool(models) and all(is_firm_model(m) for m in models)

    @property
    def configuration(self) -> str:
        """The cell's id without its seed: ``INSTITUTION.MODEL.TASK[.OVERLAY]``."""
        parts = [self.institution, self.model, self.task]
        return ".".join(parts if self.overlay is None else [*parts, self.overlay])


@dataclass(frozen=True)
class Source:
    """Where results came from, and what is recorded about how they were made."""

    kind: Literal["experiment", "run"]
    path: Path
    id: str
    description: str | None = None
    command: str | None = None
    govern_version: str | None = None
    python: str | None = None
    digest: str | None = None  # the experiment's (or the run's institution's) digest
    manifest: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # file -> sha256
    created: str | None = None


@dataclass(frozen=True)
class ResultSet:
    sources: tuple[Source, ...]
    cells: tuple[CellResult, ...]  # every cell, those without finished items included

    @property
    def simulated(self) -> Simulated:
        kinds = {cell.simulated for cell in self.cells}
        if kinds == {"yes"}:
            return "yes"
        return "partly" if kinds & {"yes", "partly"} else "no"

    @property
    def label(self) -> str | None:
        """SIMULATED_LABEL, FIRMS_LABEL, a label of both, a partly simulated label, or None
        for real models alone. Built-in firms are offline programs, never called simulated
        models: a label says which of the two ran."""
        firms = sum(cell.firms_only for cell in self.cells)
        if self.simulated == "yes":
            if firms == len(self.cells):
                return FIRMS_LABEL
            if firms:
                return (
                    f"SIMULATED and OFFLINE results: {firms} of {len(self.cells)} cells ran "
                    "govern's built-in firms (firm/...), the others govern's built-in sim/ "
                    "models: these are not LLM results"
                )
            return SIMULATED_LABEL
        if self.simulated == "partly":
            some = sum(cell.simulated != "no" for cell in self.cells)
            what = "sim/ models or firms (firm/...)" if firms else "sim/ models"
            return (
                f"PARTLY SIMULATED results: {some} of {len(self.cells)} cells ran some or all of "
                f"their roles on govern's built-in {what}, so these figures are not those "
                "of real models alone"
            )
        return None


# --------------------------------------------------------------------------- cell ids

_SEED_PART = re.compile(r"^s(0|[1-9][0-9]{0,18})$")


def parse_cell_id(text: str) -> tuple[str, str, str, int, str | None]:
    """``INSTITUTION.MODEL.TASK.sSEED[.OVERLAY]`` -> its parts (labels never hold a '.')."""
    parts = text.split(".")
    if len(parts) not in (4, 5) or not all(parts) or not _SEED_PART.match(parts[3]):
        raise ValueError(
            f"'{quoted(text)}' is not a cell id of the form INSTITUTION.MODEL.TASK.sSEED[.OVERLAY]"
        )
    overlay = parts[4] if len(parts) == 5 else None
    return parts[0], parts[1], parts[2], int(parts[3][1:]), overlay


# --------------------------------------------------------------------------- files


def _read(path: Path, limit: int, what: str) -> bytes:
    try:
        data = read_regular(path, limit)
    except FileNotFoundError:
        raise ResultsError(f"{_shown(path)}: no {what} there") from None
    except NotRegularFile as exc:
        raise ResultsError(f"{_shown(path)} {exc.strerror}: expected the {what}") from None
    except OSError as exc:
        raise ResultsError(f"cannot read the {what} {_shown(path)}: {exc.strerror}") from None
    if len(data) > limit:
        raise ResultsError(
            f"{_shown(path)} is larger than {limit >> 10} KiB: not a {what} govern wrote"
        )
    return data


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _json(data: bytes | str, path: Path, what: str) -> Any:
    try:
        return json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise ResultsError(f"{_shown(path)}: JSON nested too deeply: not a {what}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{_shown(path)} is not valid JSON ({exc}): not a {what}") from None


def _read_json(path: Path, limit: int, what: str) -> Any:
    return _json(_read(path, limit, what), path, what)


def _invalid(path: Path, exc: ValidationError) -> ResultsError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ResultsError(f"{_shown(path)}: {where}: {first['msg']}{more}")


def _inside(base: Path, relative: str, what: str, path: Path) -> Path:
    """``base / relative``, refused unless it stays inside ``base`` (symbolic links resolved)."""
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts or "\x00" in relative:
        raise ResultsError(
            f"{_shown(path)}: the {what} '{quoted(escape_controls(relative))}' is not a relative "
            "path inside the experiment folder: refused"
        )
    full = base / candidate
    try:
        resolved = full.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ResultsError(
            f"{_shown(path)}: cannot resolve the {what} {_shown(full)}: {exc}"
        ) from None
    if not resolved.is_relative_to(base.resolve()):
        raise ResultsError(
            f"{_shown(path)}: the {what} {_shown(full)} leads outside the experiment folder "
            f"(to {_shown(resolved)}): refused"
        )
    return full


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {quoted(repr(value))}")
    return float(value)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"{what} must be a whole number of at least 0, not {quoted(repr(value))}")
    return value


def item_outcome(record: Mapping[str, Any]) -> ItemOutcome:
    """An ItemOutcome from a results.jsonl record, checked; ValueError says what is wrong."""
    item = record.get("id")
    if not isinstance(item, str) or not item or len(item) > ID_CHARS:
        raise ValueError(f"an item needs a string 'id', not {quoted(repr(item))}")
    flags = {}
    for name in ("correct_strict", "correct_flexible"):
        value = record.get(name, False)
        if not isinstance(value, bool):
            raise ValueError(f"item {quoted(item)}: '{name}' must be true or false")
        flags[name] = value
    cost = record.get("cost")
    market = record.get("market")
    if market is not None:
        try:
            market = MarketOutcome.model_validate(market)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ValueError(
                f"item {quoted(item)}: its market block: {where}: {first['msg']}"
            ) from None
    return ItemOutcome(
        item=item,
        correct_strict=flags["correct_strict"],
        correct_flexible=flags["correct_flexible"],
        calls=_count(record.get("calls", 0), f"item {quoted(item)}: 'calls'"),
        tokens=_count(record.get("prompt_tokens", 0), f"item {quoted(item)}: 'prompt_tokens'")
        + _count(record.get("completion_tokens", 0), f"item {quoted(item)}: 'completion_tokens'"),
        cost=None if cost is None else _number(cost, f"item {quoted(item)}: 'cost'"),
        simulated=record.get("simulated") is True,
        failed=record.get("outcome") == "error",
        market=market,
    )


def _classify(
    items: tuple[ItemOutcome, ...], models: Mapping[str, str], claimed: bool
) -> Simulated:
    """Fully, partly or not simulated, from every piece of evidence: a label is never lost."""
    sim_items = sum(i.simulated for i in items)
    sim_models = sum(is_simulated(m) for m in models.values())
    if claimed or (items and sim_items == len(items)) or (models and sim_models == len(models)):
        return "yes"
    return "partly" if sim_items or sim_models else "no"


# --------------------------------------------------------------------------- experiment.json


class _CellEntry(_Strict):
    id: StrictStr = Field(min_length=1, max_length=ID_CHARS)
    institution: StrictStr | None = None
    model: StrictStr | None = None
    task: StrictStr | None = None
    seed: StrictInt | None = None
    overlay: StrictStr | None = None
    digest: StrictStr | None = None
    folder: StrictStr | None = Field(None, max_length=4096)
    models: dict[StrictStr, StrictStr] | list[StrictStr] = Field(default_factory=dict)
    items: StrictInt | None = Field(None, ge=0)  # items planned


class _ExperimentFile(_Strict):
    experiment: StrictStr = Field(min_length=1, max_length=ID_CHARS)
    description: StrictStr | None = None
    manifest: StrictStr | None = None
    digest: StrictStr | None = None
    files: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    command: StrictStr | None = None
    govern_version: StrictStr | None = None
    python: StrictStr | None = None
    simulated: StrictBool | None = None
    cells: list[_CellEntry] = Field(default_factory=list)


# --------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class _StoreContents:
    id: str
    digest: str
    created: str
    govern_version: str
    cells: dict[str, tuple[str | None, str]]  # cell -> (folder, status)
    items: dict[str, list[tuple[int, ItemOutcome]]]  # cell -> (seed, outcome)
    heads: dict[str, str]  # cell -> its latest head, as stored (JSON text)


# A market's block of its stored record, without the quantities; NULL for any other item.
_MARKET_BLOCK = (
    "CASE WHEN json_type(record, '$.market') = 'object' "
    "THEN json_remove(json_extract(record, '$.market'), '$.quantities') END"
)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """The store opened for reading only: SQLite refuses every write on this connection."""
    try:
        head = read_regular(path, len(SQLITE_MAGIC))[: len(SQLITE_MAGIC)]
    except FileNotFoundError:
        raise ResultsError(
            f"{_shown(path)}: no results store. This experiment has not started, or its folder "
            "lost its results.sqlite; run the experiment (govern run EXPERIMENT.yaml) to make it"
        ) from None
    except NotRegularFile as exc:
        raise ResultsError(f"{_shown(path)} {exc.strerror}: expected the results store") from None
    except OSError as exc:
        raise ResultsError(
            f"cannot read the results store {_shown(path)}: {exc.strerror}"
        ) from None
    if head != SQLITE_MAGIC:
        raise ResultsError(f"{_shown(path)} is not an SQLite database: not a govern results store")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        return sqlite3.connect(uri, uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise ResultsError(f"cannot open the results store {_shown(path)}: {exc}") from None


def _read_store(path: Path) -> _StoreContents:
    db = _connect_read_only(path)
    try:
        (application_id,) = db.execute("PRAGMA application_id").fetchone()
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if application_id != APPLICATION_ID:
            raise ResultsError(
                f"{_shown(path)} is an SQLite database but not a govern results store"
            )
        if version > SCHEMA_VERSION:
            raise ResultsError(
                f"{_shown(path)} was written by a newer govern (store schema {version}); "
                "upgrade govern to read it"
            )
        db.execute("BEGIN")  # one snapshot: a run still recording items cannot tear it
        row = db.execute("SELECT id, digest, created, govern_version FROM experiment").fetchone()
        if row is None:
            raise ResultsError(f"{_shown(path)}: the results store has no experiment row")
        cells = {
            str(cell): (folder if isinstance(folder, str) else None, str(status))
            for cell, folder, status in db.execute("SELECT cell, folder, status FROM cells")
        }
        items: dict[str, list[tuple[int, ItemOutcome]]] = {}
        rows = db.execute(
            "SELECT cell, item, seed, outcome, correct_strict, correct_flexible, calls, "
            "prompt_tokens, completion_tokens, cost, simulated, "
            f"{_MARKET_BLOCK} FROM items ORDER BY rowid"
        )
        for (
            cell,
            item,
            seed,
            outcome,
            strict,
            flexible,
            calls,
            prompt,
            completion,
            cost,
            sim,
            market,
        ) in rows:
            record = {
                "id": item,
                "outcome": outcome,
                "correct_strict": bool(strict),
                "correct_flexible": bool(flexible),
                "calls": calls,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cost": cost,
                "simulated": bool(sim),
                "market": None if market is None else _json(market, path, "results store"),
            }
            try:
                items.setdefault(str(cell), []).append((_count(seed, "seed"), item_outcome(record)))
            except ValueError as exc:
                raise ResultsError(f"{_shown(path)}: cell {_shown(cell)}: {exc}") from None
        heads = {
            str(cell): head
            for cell, head in db.execute(
                "SELECT cell, head FROM ledger_heads ORDER BY rowid"
            )  # the last one of each cell wins
        }
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise ResultsError(
            f"the results store {_shown(path)} cannot be read ({exc}): it is damaged or not a "
            "govern results store"
        ) from None
    finally:
        db.close()
    return _StoreContents(str(row[0]), str(row[1]), str(row[2]), str(row[3]), cells, items, heads)


def _head(text: Any, where: str) -> tuple[dict[str, Any] | None, str | None]:
    if text is None:
        return None, "no ledger head recorded"
    try:
        head = parse_json(text) if isinstance(text, str | bytes) else text
    except ValueError:
        return None, f"the ledger head recorded in {where} is not JSON"
    problem = head_problem(head)
    if problem:
        return None, f"the ledger head recorded in {where} is unusable: {problem}"
    return head, None


# --------------------------------------------------------------------------- loading


def load_experiment_results(folder: Path) -> tuple[Source, list[CellResult]]:
    """An experiment folder's description and cells, each with its finished items."""
    path = folder / EXPERIMENT_FILE
    data = _read_json(path, JSON_LIMIT, "experiment description (experiment.json)")
    try:
        described = _ExperimentFile.model_validate(data)
    except ValidationError as exc:
        raise _invalid(path, exc) from None
    store = _read_store(folder / STORE_FILE)
    if store.id != described.experiment:
        raise ResultsError(
            f"{_shown(folder)}: experiment.json is experiment '{quoted(described.experiment)}' but "
            f"its results store holds '{quoted(store.id)}': the two do not belong together"
        )
    if described.digest is not None and described.digest != store.digest:
        raise ResultsError(
            f"{_shown(folder)}: experiment.json's digest {quoted(described.digest)} differs from "
            f"its results store's {quoted(store.digest)}: the store was written for another "
            "manifest"
        )
    entries: dict[str, _CellEntry] = {}
    for entry in described.cells:
        if entry.id in entries:
            raise ResultsError(f"{_shown(path)}: cell '{quoted(entry.id)}' is listed twice")
        entries[entry.id] = entry
    ids = list(entries) + sorted(set(store.cells) - set(entries))
    cells = [_experiment_cell(folder, path, i, entries.get(i), store, described) for i in ids]
    source = Source(
        kind="experiment",
        path=folder,
        id=described.experiment,
        description=described.description,
        command=described.command,
        govern_version=described.govern_version or store.govern_version,
        python=described.python,
        digest=store.digest,
        manifest=described.manifest,
        files=dict(described.files),
        created=store.created,
    )
    return source, cells


def _experiment_cell(
    folder: Path,
    path: Path,
    ident: str,
    entry: _CellEntry | None,
    store: _StoreContents,
    described: _ExperimentFile,
) -> CellResult:
    try:
        institution, model, task, seed, overlay = parse_cell_id(ident)
    except ValueError as exc:
        raise ResultsError(f"{_shown(path)}: {exc}") from None
    if entry is not None:
        said = (entry.institution, entry.model, entry.task, entry.seed, entry.overlay)
        parsed = (institution, model, task, seed, overlay)
        if any(s is not None and s != p for s, p in zip(said[:4], parsed[:4], strict=True)) or (
            entry.overlay != overlay and (entry.overlay is not None or overlay is not None)
        ):
            raise ResultsError(
                f"{_shown(path)}: cell '{quoted(ident)}' is described with other coordinates "
                "than its id says"
            )
    relative = entry.folder if entry is not None and entry.folder else f"cells/{ident}"
    cell_folder: Path | None = _inside(folder, relative, "cell folder", path)
    if not cell_folder.is_dir():
        cell_folder = None
    seeded = store.items.get(ident, [])
    wrong_seed = [s for s, _ in seeded if s != seed]
    if wrong_seed:
        raise ResultsError(
            f"{_shown(folder / STORE_FILE)}: cell '{quoted(ident)}' holds items of seed "
            f"{wrong_seed[0]}, not its own seed {seed}"
        )
    items = _first_of_each(i for _, i in seeded)
    models = _models(entry.models) if entry is not None else {}
    head, note = _head(store.heads.get(ident), "the results store")
    return CellResult(
        id=ident,
        institution=institution,
        model=model,
        task=task,
        seed=seed,
        overlay=overlay,
        source=folder,
        folder=cell_folder,
        items=items,
        ledger_head=head,
        ledger_note=note,
        simulated=_classify(items, models, described.simulated is True),
        models=models,
        status=store.cells.get(ident, (None, None))[1],
        planned=entry.items if entry is not None else None,
    )


def _models(models: dict[str, str] | list[str]) -> dict[str, str]:
    """Role -> model; a plain list of the models a cell used is keyed by position."""
    return dict(models) if isinstance(models, dict) else {str(i): m for i, m in enumerate(models)}


def _first_of_each(items: Iterator[ItemOutcome] | list[ItemOutcome]) -> tuple[ItemOutcome, ...]:
    """Each item once, its first record kept (as the store keeps the first result)."""
    seen: dict[str, ItemOutcome] = {}
    for item in items:
        seen.setdefault(item.item, item)
    return tuple(seen.values())


def _results_lines(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise ResultsError(f"{_shown(path)}: no results (results.jsonl) there") from None
    except OSError as exc:
        raise ResultsError(f"cannot read {_shown(path)}: {exc.strerror}") from None
    with handle:
        number = 0
        while line := handle.readline(LINE_LIMIT + 1):
            number += 1
            if len(line) > LINE_LIMIT:
                raise ResultsError(f"{_shown(path)}:{number}: a line longer than 32 MiB: refused")
            if line.strip():
                yield number, _json(line, path, f"results line (line {number})")


def run_label(models: Mapping[str, str]) -> str:
    """A run's model label: its one model, or every model it used joined by '+'."""
    labels = sorted({model_label(m) for m in models.values()})
    return "+".join(labels) if labels else "model"


def load_run_results(folder: Path) -> tuple[Source, CellResult]:
    """A single run's folder as one cell."""
    summary = _read_json(folder / "summary.json", SMALL_LIMIT, "run summary (summary.json)")
    described = _read_json(folder / "manifest.json", JSON_LIMIT, "run manifest (manifest.json)")
    if not isinstance(summary, dict) or not isinstance(described, dict):
        raise ResultsError(f"{_shown(folder)}: summary.json and manifest.json must be JSON objects")
    try:
        run = _RunSummary.model_validate(summary)
    except ValidationError as exc:
        raise _invalid(folder / "summary.json", exc) from None
    items = []
    path = folder / "results.jsonl"
    for number, record in _results_lines(path):
        if not isinstance(record, dict):
            raise ResultsError(f"{_shown(path)}:{number}: not a JSON object")
        try:
            items.append(item_outcome(record))
        except ValueError as exc:
            raise ResultsError(f"{_shown(path)}:{number}: {exc}") from None
    unique = _first_of_each(items)
    institution, model, task = _label(run.manifest), run_label(run.models), _label(run.task)
    head, note = _run_head(folder)
    cell = CellResult(
        id=cell_id(institution, model, task, run.seed, None),
        institution=institution,
        model=model,
        task=task,
        seed=run.seed,
        overlay=None,
        source=folder,
        folder=folder,
        items=unique,
        ledger_head=head,
        ledger_note=note,
        simulated=_classify(unique, run.models, run.simulated is True),
        models=dict(run.models),
        status="finished" if run.complete else "stopped",
    )
    digest = described.get("institution_digest")
    source = Source(
        kind="run",
        path=folder,
        id=str(described.get("run")) if isinstance(described.get("run"), str) else folder.name,
        command=None,
        govern_version=run.govern_version,
        digest=digest if isinstance(digest, str) else None,
        manifest=_request_manifest(described),
        created=run.started,
    )
    return source, cell


def _request_manifest(described: dict[str, Any]) -> str | None:
    request = described.get("request")
    if isinstance(request, dict) and isinstance(request.get("manifest"), str):
        return request["manifest"]
    return None


def _label(text: str) -> str:
    """A manifest id or task name as a cell-id label: no '.', which separates the parts."""
    return text.replace(".", "-") or "unnamed"


class _RunSummary(_Strict):
    manifest: StrictStr = Field(min_length=1, max_length=ID_CHARS)
    task: StrictStr = Field(min_length=1, max_length=ID_CHARS)
    seed: StrictInt = Field(ge=0)
    models: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    simulated: StrictBool | None = None
    complete: StrictBool | None = None
    govern_version: StrictStr | None = None
    started: StrictStr | None = None


def _run_head(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    path = folder / "ledger.head"
    if not path.exists():
        return None, "no ledger.head in the run folder"
    try:
        text = _read(path, HEAD_LIMIT, "ledger head")
    except ResultsError as exc:
        return None, str(exc)
    return _head(text, "ledger.head")


def folder_kind(path: Path) -> Literal["experiment", "run"]:
    """What a path given on the command line is; a usage error when it is neither."""
    if not path.exists():
        raise ResultsError(f"{_shown(path)}: no such folder", usage=True)
    if not path.is_dir():
        raise ResultsError(
            f"{_shown(path)} is not a folder: give an experiment folder (with experiment.json) "
            "or a run folder (with results.jsonl)",
            usage=True,
        )
    if (path / EXPERIMENT_FILE).exists():
        return "experiment"
    if all((path / name).exists() for name in RUN_FILES):
        return "run"
    raise ResultsError(
        f"{_shown(path)} is neither an experiment folder (no experiment.json) nor a run folder "
        "(no summary.json, manifest.json and results.jsonl)",
        usage=True,
    )


def load_results(paths: list[Path]) -> ResultSet:
    """Experiment and run folders, read and checked, as one set of cells with unique ids."""
    sources: list[Source] = []
    cells: dict[str, CellResult] = {}
    for path in paths:
        if folder_kind(path) == "experiment":
            source, found = load_experiment_results(path)
        else:
            source, cell = load_run_results(path)
            found = [cell]
        sources.append(source)
        for cell in found:
            if cell.id in cells:
                raise ResultsError(
                    f"two folders hold the cell {_shown(cell.id)}: {_shown(cells[cell.id].source)} "
                    f"and {_shown(cell.source)}; compare them separately",
                    usage=True,
                )
            cells[cell.id] = cell
    return ResultSet(tuple(sources), tuple(cells.values()))
