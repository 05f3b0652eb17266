"""What a run is asked to do, and how a resumed run must ask for the same.

The request is recorded in the run's manifest.json when the run starts, so that
``govern run --resume DIR`` repeats it exactly; ``--concurrency``, the key file
and the fsync policy may change between sessions, since they change no result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govern.ledger.writer import FsyncPolicy
from govern.run.resume import ResumeError, read_request

DEFAULT_CONCURRENCY = 8


# The only settings a resumed run takes anew: none of them changes a result.
MAY_CHANGE_ON_RESUME = ("concurrency", "key_file", "fsync", "timeout", "deadline")


class RunSetupError(Exception):
    """A problem with what was asked for, found before the run starts."""


class RunDamaged(RunSetupError):
    """The run to resume does not stand up to its own ledger (a failed verification, not a
    misuse): refused before anything is written, so the run is left as it was."""


@dataclass
class RunRequest:
    manifest: Path  # a manifest, an institution to run with default settings, or an experiment
    cell: str | None = None  # with an experiment: the id of the cell to run
    items: tuple[str, ...] | None = None  # run only these items (an experiment's retries)
    task: str | None = None
    limit: int | None = None
    model: str | None = None
    role_models: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    concurrency: int | None = None  # None: 8, or what a resumed run started with
    out: Path | None = None
    data: Path | None = None
    download: bool = False
    api_base: str | None = None
    key_file: Path | None = None  # default: GOVERN_LEDGER_KEY, then the user's key file
    fsync: FsyncPolicy = "seal"  # when the ledger is forced to disk
    resume: Path | None = None  # continue the unfinished run in this folder
    timeout: float | None = None  # seconds per attempt of a real model's call (manifest's)
    deadline: float | None = None  # seconds per whole call, retries included (manifest's)

    def recorded(self) -> dict[str, Any]:
        """What a resumed run must repeat exactly, kept in manifest.json."""
        return {
            "manifest": str(self.manifest.resolve()),
            "cell": self.cell,
            "items": list(self.items) if self.items is not None else None,
            "task": self.task,
            "limit": self.limit,
            "model": self.model,
            "role_models": self.role_models,
            "seed": self.seed,
            "data": str(self.data.resolve()) if self.data else None,
            "api_base": self.api_base,
            "concurrency": self.concurrency,
        }

    def resuming(self, folder: Path) -> RunRequest:
        """This request with the recorded one's settings, to continue the run in ``folder``."""
        recorded = read_request(folder)
        try:
            return RunRequest(
                manifest=Path(recorded["manifest"]),
                cell=recorded.get("cell"),
                items=tuple(recorded["items"]) if recorded.get("items") is not None else None,
                task=recorded["task"],
                limit=recorded["limit"],
                model=recorded["model"],
                role_models=dict(recorded["role_models"]),
                seed=recorded["seed"],
                concurrency=recorded["concurrency"]
                if self.concurrency is None
                else self.concurrency,
                out=folder,
                data=Path(recorded["data"]) if recorded["data"] else None,
                api_base=recorded["api_base"],
                key_file=self.key_file,
                fsync=self.fsync,
                resume=folder,
                timeout=self.timeout,
                deadline=self.deadline,
            )
        except (KeyError, TypeError, ValueError):
            raise ResumeError(
                f"{folder}/manifest.json is damaged: its request is incomplete"
            ) from None


def same_run_or_refuse(request: RunRequest, resumed: RunRequest, folder: Path) -> None:
    """``govern run MANIFEST --out DIR`` on DIR's run must name the file it was run from; its
    settings are compared with the run's once they are resolved (see `changes_since`)."""
    if resumed.manifest != request.manifest.resolve():
        raise RunSetupError(
            f"{folder} holds a run of {resumed.manifest}, not of {request.manifest}; "
            "choose a new --out folder, or resume it with --resume"
        )


@dataclass(frozen=True)
class Changes:
    """How a run about to start differs from the one its folder holds, as their ledger
    headers say: resolved settings, not the command lines, so that spelling out a setting
    the run took from its manifest or by default is no change."""

    settings: list[str]  # each with both values: "seed 5 (it started with 0)"
    spec: str | None = None  # "the institution" or "the manifest", when it changed
    edited: list[str] = field(default_factory=list)  # the spec's files that differ

    def __bool__(self) -> bool:
        return bool(self.settings or self.spec)


def _at(header: dict[str, Any], *path: str) -> Any:
    value: Any = header
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


def _by_role(models: Any, others: Any) -> str:
    """The roles whose models differ from ``others``', as ROLE=MODEL."""
    mine, theirs = models or {}, others or {}
    roles = sorted(r for r in {*mine, *theirs} if mine.get(r) != theirs.get(r))
    return ", ".join(f"{role}={mine.get(role, 'none')}" for role in roles)


def changes_since(now: dict[str, Any], then: dict[str, Any]) -> Changes:
    """What differs between the header of the run about to start and of the one it would
    continue, in the words a refusal uses."""
    settings = []
    for name in ("task", "seed", "api_base"):
        value, was = _at(now, "config", name), _at(then, "config", name)
        if value != was:
            settings.append(
                f"{name.replace('_', ' ')} {_shown(value)} (it started with {_shown(was)})"
            )
    if _at(now, "config", "items_sha256") != _at(then, "config", "items_sha256"):
        count, was = _at(now, "config", "items"), _at(then, "config", "items")
        source, was_source = _at(now, "config", "data_source"), _at(then, "config", "data_source")
        if source != was_source:
            data = f"; the data {source} (it started with {was_source})"
        else:
            data = f"; the data {source} changed since" if count == was else ""
        items = f"{count} items (it started with {was})" if count != was else f"other {count} items"
        settings.append(items + data)
    for name, key in (("models", "models"), ("seat models", "seat_models")):
        models, were = _at(now, "config", key), _at(then, "config", key)
        if models != were:
            settings.append(
                f"{name} {_by_role(models, were)} (it started with {_by_role(were, models)})"
            )
    if _at(now, "institution_sha256") != _at(then, "institution_sha256"):
        spec: str | None = "the institution"
    elif _at(now, "manifest", "semantic_sha256") != _at(then, "manifest", "semantic_sha256"):
        spec = "the manifest"
    else:
        spec = None
    files, were = _at(now, "manifest", "files") or {}, _at(then, "manifest", "files") or {}
    edited = sorted(f for f in {*files, *were} if files.get(f) != were.get(f)) if spec else []
    return Changes(settings, spec, edited)


def refusal(folder: Path, changes: Changes, *, complete: bool, asked_anew: bool) -> str:
    """Why the run in ``folder`` is not continued, and what to do instead. ``asked_anew``:
    by `govern run MANIFEST --out DIR` again, whose settings may be what differs."""
    settings = "; ".join(changes.settings)
    edited = f" (edited: {', '.join(changes.edited)})" if changes.edited else ""
    if complete:
        if changes.spec is None:
            return (
                f"the run in {folder} is complete, and was started with other settings: "
                f"{settings}; choose a new --out folder for a run with these"
            )
        also = f"; it was also started with other settings: {settings}" if settings else ""
        return (
            f"the run in {folder} is complete, but {changes.spec} changed since it ran"
            f"{edited}{also}; its results are of the earlier files: choose a new --out folder "
            "for a run of these"
        )
    if changes.spec is None and asked_anew:
        return (
            f"{folder} holds an unfinished run started with other settings: {settings}; resume "
            f"it as it was with --resume {folder}, or choose a new --out folder"
        )
    what = [f"{changes.spec} changed since the run started{edited}"] if changes.spec else []
    return (
        f"cannot resume {folder}: {'; '.join([*what, *changes.settings])}, so its results "
        "would not be one run's; start a new run in a new --out folder"
    )
