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
    """``govern run MANIFEST --out DIR`` on DIR's unfinished run: the same request again
    continues it; any other is refused rather than silently resumed as it was."""
    if resumed.manifest != request.manifest.resolve():
        raise RunSetupError(
            f"{folder} holds a run of {resumed.manifest}, not of {request.manifest}; "
            "choose a new --out folder, or resume it with --resume"
        )
    asked, started = request.recorded(), resumed.recorded()
    differ = [
        f"{name} {asked[name]!r} (it started with {started[name]!r})"
        for name in asked
        if name not in MAY_CHANGE_ON_RESUME and asked[name] != started[name]
    ]
    if differ:
        raise RunSetupError(
            f"{folder} holds an unfinished run started with other settings: "
            f"{'; '.join(differ)}; resume it as it was with --resume {folder}, or choose a "
            "new --out folder"
        )
