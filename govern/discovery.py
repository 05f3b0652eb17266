"""Find the institutions, manifests and task cards of a project for ``govern list``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from govern.spec.checks import load_checked
from govern.spec.errors import SpecInvalid, display_path, escape_controls, quoted
from govern.spec.loader import LoadedInstitution, LoadedManifest
from govern.tasks.registry import TASKS


@dataclass(frozen=True)
class Found:
    """One line of ``govern list``; path and summary come from the user's files and are
    made printable (no control characters, long names cut) when a Found is made."""

    kind: str
    path: str
    summary: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", escape_controls(self.path))
        object.__setattr__(self, "summary", escape_controls(quoted(self.summary, 200)))


def discover(root: Path) -> list[Found]:
    found: list[Found] = []
    for folder in ("institutions", "manifests"):
        for path in yaml_files_in(root / folder):
            found.append(_describe(path))
    for name, task in sorted(TASKS.items()):
        found.append(Found("task", "(built in)", f"{name}: {task.description}"))
    for path in yaml_files_in(root / "tasks"):
        found.append(Found("task", display_path(path), path.stem))
    return found


def yaml_files_in(folder: Path) -> list[Path]:
    """Every .yaml or .yml file in ``folder`` and its subfolders (institutions/first_edition/
    holds the topologies the second edition replaced), in path order."""
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml"))


def _describe(path: Path) -> Found:
    shown = display_path(path)
    try:
        loaded = load_checked(path)
    except SpecInvalid as exc:
        return Found("invalid", shown, str(exc.errors[0]))
    if isinstance(loaded, LoadedInstitution):
        inst = loaded.institution
        return Found("institution", shown, f"{inst.id} ({inst.pattern}): {inst.name}")
    if not isinstance(loaded, LoadedManifest):
        exp = loaded.experiment
        return Found("experiment", shown, f"{exp.id}: {len(loaded.cells)} cells")
    manifest = loaded.manifest
    inst = manifest.institution
    task = f", task {manifest.task.name}" if manifest.task else ""
    return Found(
        "manifest",
        shown,
        f"{manifest.id}: {inst.name} ({inst.pattern}), model {manifest.models.default}{task}",
    )
