"""Experiment manifests: a grid of runs, parsed and checked like any other spec.

A file with ``kind: experiment`` names its axes: institutions (institution files or
manifests), model choices, tasks, seeds and, optionally, governance overlays
("regimes"). Its cells are the Cartesian product of the axes, in the order written
(institution, then model, task, seed, overlay); each cell is an ordinary manifest,
built in memory, that the single-run path can take as it is.

Cell ids
--------
``INSTITUTION.MODEL.TASK.sSEED`` and, when the experiment has an ``overlays`` axis,
``.OVERLAY`` after it: ``senate.sim-medium.gsm8k.s0``,
``tang.sim-weak.gsm8k.s1.strict_regime``. Each part is a label of its axis:

- institution: the entry's ``name``, else the manifest's id, else the institution's id;
- model: the choice's ``name``, else its default model in lower case with every run of
  characters other than ``a-z 0-9 _`` turned into ``-`` (``sim/medium`` -> ``sim-medium``);
- task: the task's name; seed: ``s`` and the number; overlay: its name.

Labels use only ``a-z 0-9 _ -`` (never ``.``), so ids are safe as file names, and two
labels of one axis may not be equal (an error at the second one's line), so two cells
never share an id. Ids depend only on the file's text: the same file gives the same
ids in every process.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, RootModel, model_validator

from govern.spec.errors import SpecError, SpecInvalid, quoted
from govern.spec.loader import (
    LoadedInstitution,
    LoadedManifest,
    _reference,
    load_spec,
    project_root,
    spec_kind,
)
from govern.spec.models import (
    MAX_DISKS,
    Budgets,
    Governance,
    Identifier,
    Manifest,
    ModelChoice,
    ModelName,
    Parsing,
    ParsingMode,
    Price,
    SamplingPolicy,
    SpecModel,
    TaskDefaults,
    _mode_alone,
)
from govern.spec.validation import Hints, listing, validate_data
from govern.spec.yaml_source import Position, YamlPath, YamlSource, read_yaml

LABEL_CHARS = 48
Label = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        max_length=LABEL_CHARS,
        description="a label for cell ids: lower-case letters, digits, '_' and '-'",
    ),
]
SEED_MAX = 2**63 - 1  # the results store keeps seeds as SQLite's 64-bit integers
Seed = Annotated[
    int,
    Field(strict=True, ge=0, le=SEED_MAX, description="a whole number from 0 to 2**63 - 1"),
]


def _shorthand(key: str) -> Any:
    """``- text`` in a list is ``- {key: text}``."""

    def expand(value: Any) -> Any:
        return {key: value} if isinstance(value, str) else value

    return BeforeValidator(expand)


def _or_text(description: str) -> Any:
    """JSON Schema of a list whose entries may also be written as text (the shorthand)."""

    def patch(schema: dict[str, Any]) -> None:
        for array in [schema, *schema.get("anyOf", [])]:
            if "items" in array:
                array["items"] = {
                    "anyOf": [{"type": "string", "description": description}, array["items"]]
                }

    return patch


def _mode_or_policy_or_null(schema: dict[str, Any]) -> None:
    """As the manifest's parsing: a mode alone or the policy's mapping (or nothing)."""
    schema["anyOf"] = [
        {"enum": list(get_args(ParsingMode))},
        *(s for s in schema["anyOf"] if s.get("type") != "null"),
        {"type": "null"},
    ]


class InstitutionEntry(SpecModel):
    """An institution file or a manifest, by relative path."""

    path: str = Field(
        min_length=1,
        description="relative path (from the experiment file) to an institution file or a "
        "manifest, inside the project folder",
    )
    name: Identifier | None = Field(
        None, description="its label in cell ids (default: the manifest's or institution's id)"
    )


class ModelEntry(ModelChoice):
    """One value of the model axis: a default model and per-role assignments."""

    name: Label | None = Field(
        None, description="its label in cell ids (default: the default model, e.g. sim-medium)"
    )

    @property
    def label(self) -> str:
        return self.name or model_label(self.default)

    def choice(self) -> ModelChoice:
        return ModelChoice.model_validate(self.model_dump(exclude={"name"}, exclude_unset=True))


class TaskSample(SpecModel):
    """A seeded subsample of a task's items."""

    size: int = Field(ge=1, strict=True, description="items to draw")
    seed: Seed = Field(0, description="seed of the draw; the same seed draws the same items")

    def indices(self, available: int) -> list[int]:
        """Which of ``available`` items the sample runs, in their original order."""
        count = min(self.size, available)
        return sorted(random.Random(self.seed).sample(range(available), count))


class TaskEntry(SpecModel):
    """One value of the task axis: a task, all of it, its first items or a seeded sample."""

    name: Identifier = Field(description="task name, e.g. gsm8k")
    limit: int | None = Field(None, ge=1, strict=True, description="run the first N items")
    sample: TaskSample | None = Field(None, description="run a seeded sample: {size, seed}")
    disks: int | None = Field(
        None, ge=1, le=MAX_DISKS, strict=True, description="task hanoi: the tower's disks"
    )

    @model_validator(mode="after")
    def _one_selection(self) -> TaskEntry:
        if self.limit is not None and self.sample is not None:
            raise ValueError("give limit: N (the first N items) or sample: {size, seed}, not both")
        if self.disks is not None and self.name != "hanoi":
            raise ValueError(f"disks is for task hanoi (the Towers of Hanoi), not {self.name}")
        return self

    @property
    def label(self) -> str:
        """The task as cell ids name it: ``hanoi-10`` for a 10-disk tower."""
        return self.name if self.disks is None else f"{self.name}-{self.disks}"


class Overlay(SpecModel):
    """One value of the overlay axis: a governance section swapped into every cell."""

    name: Identifier = Field(description="its label in cell ids, e.g. strict_regime or none")
    governance: Governance | None = Field(
        None, description="the governance the cell runs under; none: the cell runs ungoverned"
    )


class Limits(SpecModel):
    """The whole experiment's budget: when one is spent, no further item starts."""

    calls: int | None = Field(None, ge=1, strict=True, description="model calls, every cell")
    tokens: int | None = Field(
        None, ge=1, strict=True, description="prompt and completion tokens, every cell"
    )
    dollars: float | None = Field(
        None, gt=0, description="US dollars at the prices litellm knows (and the prices file)"
    )


class Experiment(SpecModel):
    """A grid of runs: institutions x models x tasks x seeds (x overlays)."""

    kind: Literal["experiment"] = Field(description="marks the file as an experiment")
    id: Identifier
    description: str | None = Field(None, description="what the experiment compares")
    institutions: list[Annotated[InstitutionEntry, _shorthand("path")]] = Field(
        min_length=1,
        description="institution files or manifests, each a relative path or {path, name}",
        json_schema_extra=_or_text("relative path to an institution file or a manifest"),
    )
    models: list[Annotated[ModelEntry, _shorthand("default")]] = Field(
        min_length=1,
        description="model choices, each a model name or {default, roles, name, ...}; a "
        "choice replaces the models section of every cell it runs in",
        json_schema_extra=_or_text("a model name, the default for every role"),
    )
    tasks: list[Annotated[TaskEntry, _shorthand("name")]] = Field(
        min_length=1,
        description="tasks, each a name or {name, limit} or {name, sample: {size, seed}}",
        json_schema_extra=_or_text("a task name: all its items"),
    )
    seeds: list[Seed] = Field(min_length=1, description="each cell's run seed")
    overlays: list[Annotated[Overlay, _shorthand("name")]] | None = Field(
        None,
        min_length=1,
        description="governance regimes, each {name, governance} or a name alone (no "
        "governance); without this axis each cell keeps its manifest's own governance",
        json_schema_extra=_or_text("a regime's name, run without governance"),
    )
    parsing: Annotated[Parsing | None, BeforeValidator(_mode_alone)] = Field(
        None,
        description="replaces every cell's parsing: a mode, or {mode, reasks}",
        json_schema_extra=_mode_or_policy_or_null,
    )
    sampling: SamplingPolicy | None = Field(None, description="replaces every cell's sampling")
    budgets: Budgets | None = Field(None, description="replaces every cell's budgets")
    prices: str | None = Field(
        None,
        min_length=1,
        description="relative path to a prices file: a mapping of model name -> {input, "
        "output} in US dollars per million tokens, for models whose price litellm does not "
        "know; each cell takes the prices of its models",
    )
    limits: Limits | None = Field(
        None,
        description="the whole experiment's budget of calls, tokens and dollars; changing it "
        "changes no result, so an experiment stopped by it resumes once it is raised",
    )


def model_label(model: str) -> str:
    """``sim/medium`` -> ``sim-medium``: a model name as a file-name-safe label."""
    label = re.sub(r"[^a-z0-9_]+", "-", model.lower()).strip("-_")[:LABEL_CHARS].strip("-_")
    return label or "model"


def cell_id(institution: str, model: str, task: str, seed: int, overlay: str | None) -> str:
    """The id of a cell from its labels (see the module's docstring)."""
    parts = [institution, model, task, f"s{seed}"]
    return ".".join(parts if overlay is None else [*parts, overlay])


# Keys of a cell's manifest that the experiment sets, replacing the base manifest's.
_CELL_KEYS = ("models", "task", "seed", "governance", "parsing", "sampling", "budgets")


@dataclass(frozen=True)
class Cell:
    """One run of the grid: its id, its coordinates and the manifest it runs."""

    id: str
    institution: str
    model: str
    task: TaskEntry
    seed: int
    overlay: str | None
    loaded: LoadedManifest = field(repr=False)

    @property
    def manifest(self) -> Manifest:
        return self.loaded.manifest


@dataclass(frozen=True)
class LoadedExperiment:
    experiment: Experiment
    source: YamlSource
    bases: tuple[LoadedInstitution | LoadedManifest, ...]
    labels: tuple[str, ...]  # each base's label, in order
    prices: dict[str, Price] = field(default_factory=dict)  # from the prices file
    prices_file: Path | None = None

    @cached_property
    def cells(self) -> list[Cell]:
        return expand(self)

    @property
    def files(self) -> list[Path]:
        """The experiment file and every file its cells are built from."""
        names = {Path(self.source.file).resolve()}
        if self.prices_file is not None:
            names.add(self.prices_file)
        for base in self.bases:
            if isinstance(base, LoadedManifest):
                names |= set(base.files)
            else:
                names |= {Path(p.file).resolve() for p in base.source.values.values()}
        return sorted(names)


def expand(loaded: LoadedExperiment) -> list[Cell]:
    """Every cell of the grid, in the order the axes are written."""
    exp = loaded.experiment
    overlays: list[tuple[int, Overlay | None]] = (
        list(enumerate(exp.overlays)) if exp.overlays is not None else [(-1, None)]
    )
    cells = []
    for (i, base), (m, choice), task, seed, (o, overlay) in itertools.product(
        enumerate(loaded.bases), enumerate(exp.models), exp.tasks, exp.seeds, overlays
    ):
        label = loaded.labels[i]
        overlay_name = overlay.name if overlay is not None else None
        cells.append(
            Cell(
                id=cell_id(label, choice.label, task.label, seed, overlay_name),
                institution=label,
                model=choice.label,
                task=task,
                seed=seed,
                overlay=overlay_name,
                loaded=_cell_manifest(loaded, i, base, m, choice, task, seed, o, overlay),
            )
        )
    return cells


def _cell_manifest(
    loaded: LoadedExperiment,
    index: int,
    base: LoadedInstitution | LoadedManifest,
    model_index: int,
    choice: ModelEntry,
    task: TaskEntry,
    seed: int,
    overlay_index: int,
    overlay: Overlay | None,
) -> LoadedManifest:
    """The base's manifest with the experiment's settings, and a source whose positions point
    each setting at the line that gave it (the experiment file's, or the base's)."""
    from govern.engine.context import models_used  # the engine loads only to run

    exp, source = loaded.experiment, loaded.source
    if isinstance(base, LoadedManifest):
        manifest, inst = base.manifest, base.institution
        values = {p: w for p, w in base.source.values.items() if not p or p[0] not in _CELL_KEYS}
        keys = {p: w for p, w in base.source.keys.items() if not p or p[0] not in _CELL_KEYS}
        kept = {k: v for k, v in base.source.data.items() if k not in _CELL_KEYS}
    else:
        manifest = Manifest(id=base.institution.id, institution=base.institution)
        inst = base
        values, keys, kept = {(): source.value_position(("institutions", index))}, {}, {}
    models = choice.choice()
    used = models_used(manifest.institution, models)  # its seats' models too
    prices = {m: price for m, price in loaded.prices.items() if m in used}
    update: dict[str, Any] = {
        "models": models.model_copy(update={"prices": {**prices, **models.prices}}),
        "task": TaskDefaults(name=task.name, limit=task.limit, disks=task.disks),
        "seed": seed,
    }
    moved: list[tuple[YamlPath, YamlPath]] = [
        (("models", model_index), ("models",)),
        (("seeds", exp.seeds.index(seed)), ("seed",)),
    ]
    if overlay is not None:
        update["governance"] = overlay.governance
        moved.append((("overlays", overlay_index, "governance"), ("governance",)))
    for name in ("parsing", "sampling", "budgets"):
        if getattr(exp, name) is not None:
            update[name] = getattr(exp, name)
            moved.append(((name,), (name,)))
    for key in ("governance", "parsing", "sampling", "budgets"):
        if key not in update:  # kept from the base: so are its positions
            values |= {p: w for p, w in base.source.values.items() if p[:1] == (key,)}
            keys |= {p: w for p, w in base.source.keys.items() if p[:1] == (key,)}
    for old, new in moved:
        values |= _rerooted(source.values, old, new)
        keys |= _rerooted(source.keys, old, new)
    cell_source = YamlSource(file=source.file, data={**kept, **update}, values=values, keys=keys)
    return LoadedManifest(manifest.model_copy(update=update), cell_source, inst)


def _rerooted(
    positions: dict[YamlPath, Position], old: YamlPath, new: YamlPath
) -> dict[YamlPath, Position]:
    cut = len(old)
    return {(*new, *p[cut:]): w for p, w in positions.items() if p[:cut] == old}


# -- loading -------------------------------------------------------------------------------


def load_experiment(source: YamlSource, path: Path) -> LoadedExperiment:
    """Validate an experiment file and load every institution and manifest it names."""
    first = _unknown_keys(source) + _bad_seeds(source)
    if first:
        raise SpecInvalid(first)
    experiment = validate_data(Experiment, source.data, source)
    errors = _duplicates(experiment, source)
    root = project_root(path.parent)
    bases: list[LoadedInstitution | LoadedManifest] = []
    for i, entry in enumerate(experiment.institutions):
        at: YamlPath = ("institutions", i) if _is_text(source, i) else ("institutions", i, "path")
        try:
            bases.append(_base(source, at, entry.path, root))
        except SpecInvalid as exc:
            errors += exc.errors
    if errors:
        raise SpecInvalid(errors)
    labels = tuple(
        entry.name or _own_id(base)
        for entry, base in zip(experiment.institutions, bases, strict=True)
    )
    _unique([(("institutions", i), label) for i, label in enumerate(labels)], "institution", source)
    prices, prices_file = _prices(source, experiment.prices, root)
    return LoadedExperiment(experiment, source, tuple(bases), labels, prices, prices_file)


class _PriceTable(RootModel[dict[ModelName, Price]]):
    """A prices file: model name -> {input, output}."""


def _prices(
    source: YamlSource, reference: str | None, root: Path
) -> tuple[dict[str, Price], Path | None]:
    """The prices file's prices, checked at the file's own lines."""
    if reference is None:
        return {}, None
    target = _reference(source, ("prices",), reference, root)
    table = read_yaml(target)
    return validate_data(_PriceTable, table.data, table).root, target


def _is_text(source: YamlSource, index: int) -> bool:
    return isinstance(source.data["institutions"][index], str)


def _own_id(base: LoadedInstitution | LoadedManifest) -> str:
    return base.manifest.id if isinstance(base, LoadedManifest) else base.institution.id


def _base(
    source: YamlSource, at: YamlPath, reference: str, root: Path
) -> LoadedInstitution | LoadedManifest:
    target = _reference(source, at, reference, root)
    if spec_kind(read_yaml(target)) == "experiment":
        raise SpecInvalid(
            [
                source.error(
                    at,
                    f"'{quoted(reference)}' is an experiment: list institution files or "
                    "manifests here, or put their institutions in this experiment",
                )
            ]
        )
    loaded = load_spec(target)
    assert not isinstance(loaded, LoadedExperiment)
    return loaded


def _unknown_keys(source: YamlSource) -> list[SpecError]:
    """Unknown top-level keys alone: a misspelt axis is one error, not also a missing axis."""
    allowed = list(Experiment.model_fields)
    hint = Hints()
    return [
        source.error(
            (key,),
            f"unknown key '{quoted(key)}'{hint(key, allowed)}; allowed keys: {listing(allowed)}",
        )
        for key in source.data
        if key not in allowed
    ]


def _bad_seeds(source: YamlSource) -> list[SpecError]:
    """A seed that is not a whole number, said as such (pydantic would name its index)."""
    seeds = source.data.get("seeds")
    if not isinstance(seeds, list):
        return []
    return [
        source.error(
            ("seeds", i),
            f"seed '{quoted(seed)}' is not a whole number from 0 to 2**63 - 1, e.g. "
            "seeds: [0, 1, 2]",
            at_value=True,
        )
        for i, seed in enumerate(seeds)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX
    ]


def _duplicates(experiment: Experiment, source: YamlSource) -> list[SpecError]:
    """Two equal labels on one axis would give two cells one id."""
    data = source.data

    def at(axis: str, i: int, key: str) -> YamlPath:
        entry = data[axis][i]
        return (axis, i, key) if isinstance(entry, dict) and key in entry else (axis, i)

    errors: list[SpecError] = []
    seen_seeds: dict[int, int] = {}
    for i, seed in enumerate(experiment.seeds):
        if seen_seeds.setdefault(seed, i) != i:
            errors.append(source.error(("seeds", i), f"seed {seed} is listed twice: remove one"))
    axes = {
        "models": ("name", [m.label for m in experiment.models], "model choice"),
        "tasks": ("name", [t.label for t in experiment.tasks], "task"),
        "overlays": ("name", [o.name for o in experiment.overlays or []], "overlay"),
    }
    for axis, (key, labels, what) in axes.items():
        errors += _unique(
            [(at(axis, i, key), label) for i, label in enumerate(labels)], what, source, False
        )
    return errors


def _unique(
    labelled: list[tuple[YamlPath, str]], what: str, source: YamlSource, throw: bool = True
) -> list[SpecError]:
    first: dict[str, YamlPath] = {}
    errors = []
    for path, label in labelled:
        if label in first:
            line = source.position(first[label]).line
            errors.append(
                source.error(
                    path,
                    f"a second {what} labelled '{label}' (the first is at line {line}): cell ids "
                    "would clash; give one of them another name: NAME",
                )
            )
        first.setdefault(label, path)
    if errors and throw:
        raise SpecInvalid(errors)
    return errors


# -- checks --------------------------------------------------------------------------------


def check_experiment(loaded: LoadedExperiment) -> list[SpecError]:
    """Every cell's manifest through the manifest checks, and every task name known."""
    from govern.spec.checks import check_manifest
    from govern.tasks.registry import TASKS

    source = loaded.source
    errors: list[SpecError] = []
    known = sorted(TASKS)
    hint = Hints()
    for i, task in enumerate(loaded.experiment.tasks):
        if task.name not in TASKS:
            at = ("tasks", i, "name") if isinstance(source.data["tasks"][i], dict) else ("tasks", i)
            errors.append(
                source.error(
                    at,
                    f"no task '{task.name}'{hint(task.name, known)}; tasks: {listing(known)}",
                    at_value=True,
                )
            )
    # The same error from the same line in the cells of several institutions is one error;
    # one found in the cells of some institutions only (a role some lack) says which.
    found: dict[SpecError, list[str]] = {}
    for cell in loaded.cells:
        for error in check_manifest(cell.loaded):
            where = found.setdefault(error, [])
            if cell.institution not in where:
                where.append(cell.institution)
    for error, labels in found.items():
        if error.file == source.file and len(labels) < len(set(loaded.labels)):
            shown = ", ".join(f"'{label}'" for label in labels)
            error = SpecError(
                error.file, error.line, error.column, f"{error.message} (in the cells of {shown})"
            )
        errors.append(error)
    return errors
