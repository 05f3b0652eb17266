"""Per-seat models: a mixed body's seats each call their own model, as the turns, the
ledger header and the run's records show; --role-model > models.seats > models.roles >
the role's own models or model > the default."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from govern.engine.context import RunContext, assign_models
from govern.models.router import ModelRouter
from govern.run.runner import RunRequest, execute, prepare
from govern.spec.models import Institution
from govern.tasks.gsm8k import GSM8K, SAMPLE
from tests.conftest import ROOT, spec_errors, write

SENATE = (ROOT / "manifests" / "senate.yaml").read_text()
MIXED = ["sim/strong", "sim/weak", "sim/medium", "sim/strong", "sim/weak"]
SENATOR_SEATS = "      title: Senator\n      seats: 5\n"


def senate(models: list[str] | None = MIXED, section: str = "") -> str:
    """The shipped senate, its senators on ``models`` (one per seat), with ``section``
    added to the manifest's models mapping."""
    text = SENATE
    if models is not None:
        listed = f"      models: [{', '.join(models)}]\n"
        assert text.count(SENATOR_SEATS) == 1
        text = text.replace(SENATOR_SEATS, SENATOR_SEATS + listed)
    return text.replace("\nmodels:\n", f"\nmodels:\n{section}", 1)


def run(folder: Path, text: str, **fields: object) -> Path:
    write(folder, "pyproject.toml", "")
    manifest = write(folder, "senate.yaml", text)
    request = RunRequest(manifest, limit=2, concurrency=1, out=folder / "run", data=SAMPLE)
    for name, value in fields.items():
        setattr(request, name, value)
    asyncio.run(execute(prepare(request)))
    return folder / "run"


def senator_models(folder: Path) -> dict[str, set[str]]:
    """Senator agent -> every model its turns record."""
    found: dict[str, set[str]] = {}
    for line in (folder / "results.jsonl").read_text().splitlines():
        for turn in json.loads(line)["turns"]:
            if turn["agent"].startswith("senator#"):
                found.setdefault(turn["agent"], set()).add(turn["model"])
    return found


def header_config(folder: Path) -> dict:
    return json.loads((folder / "ledger.jsonl").read_text().splitlines()[0])["body"]["config"]


def test_a_mixed_senate_calls_each_seats_own_model(tmp_path: Path) -> None:
    folder = run(tmp_path, senate())
    expected = {f"senator#{n}": {model} for n, model in enumerate(MIXED, 1)}
    assert senator_models(folder) == expected
    config = header_config(folder)
    assert config["models"] == {"consul": "sim/medium", "tribune": "sim/medium"}
    assert config["seat_models"] == {f"senator#{n}": m for n, m in enumerate(MIXED, 1)}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["models"]["senator#2"] == "sim/weak"
    inputs = json.loads((folder / "manifest.json").read_text())
    assert inputs["models"] == {**config["models"], **config["seat_models"]}


def test_the_manifests_seats_override_the_roles_own(tmp_path: Path) -> None:
    seats = ["sim/weak"] * 4 + ["sim/strong"]
    section = f"  roles: {{senator: sim/medium}}\n  seats:\n    senator: [{', '.join(seats)}]\n"
    folder = run(tmp_path, senate(MIXED, section))
    assert senator_models(folder) == {f"senator#{n}": {m} for n, m in enumerate(seats, 1)}


def test_role_model_on_the_command_line_overrides_every_seat(tmp_path: Path) -> None:
    section = "  seats:\n    senator: [sim/weak, sim/weak, sim/weak, sim/weak, sim/weak]\n"
    folder = run(tmp_path, senate(MIXED, section), role_models={"senator": "sim/strong"})
    assert senator_models(folder) == {f"senator#{n}": {"sim/strong"} for n in range(1, 6)}
    config = header_config(folder)
    assert config["models"]["senator"] == "sim/strong" and "seat_models" not in config


def test_a_run_without_seat_models_records_its_header_as_before(tmp_path: Path) -> None:
    config = header_config(run(tmp_path, senate(None)))
    assert "seat_models" not in config and config["models"]["senator"] == "sim/medium"


@pytest.mark.parametrize(
    ("cli", "seats", "roles", "own", "expected"),
    [
        ({}, {}, {}, None, {"senator": "sim/medium"}),  # the default
        ({}, {}, {}, ["a", "b"], {"senator#1": "a", "senator#2": "b"}),
        ({}, {}, {"senator": "r"}, ["a", "b"], {"senator": "r"}),
        (
            {},
            {"senator": ["s", "t"]},
            {"senator": "r"},
            ["a", "b"],
            {"senator#1": "s", "senator#2": "t"},
        ),
        ({"senator": "c"}, {"senator": ["s", "t"]}, {"senator": "r"}, ["a", "b"], {"senator": "c"}),
    ],
)
def test_the_precedence_of_model_sources(
    cli: dict, seats: dict, roles: dict, own: list[str] | None, expected: dict
) -> None:
    institution = _two_senators(own)
    role_models, seat_models = assign_models(institution, "sim/medium", roles, cli, seats)
    assert {**role_models, **seat_models} == {"consul": "sim/medium", **expected}


def _two_senators(models: list[str] | None) -> Institution:
    """A consul and two senators, the senators on ``models`` if given."""
    senator = {"id": "senator", "title": "Senator", "instructions": "Vote.", "seats": 2}
    motion = {
        "id": "motion",
        "kind": "propose",
        "role": "consul",
        "purpose": "Move.",
        "next": {"done": "end", "unparsable": "end"},
    }
    return Institution.model_validate(
        {
            "id": "s",
            "name": "S",
            "era": "now",
            "pattern": "pipeline",
            "history": "h",
            "roles": [
                {"id": "consul", "title": "Consul", "instructions": "Preside."},
                senator | ({"models": models} if models else {}),
            ],
            "entry": "motion",
            "stages": [motion, {"id": "end", "kind": "terminal"}],
        }
    )


def test_a_replacement_sits_in_its_seat_and_takes_its_model() -> None:
    institution = _two_senators(["sim/strong", "openai/gemma"])
    role_models, seat_models = assign_models(institution, "sim/medium", {})
    context = RunContext(
        institution,
        GSM8K(),
        ModelRouter(),
        role_models,
        seat_models=seat_models,
        system_prompt={"openai/gemma": "merge_into_user"},
    )
    assert context.model_for("senator#2~3") == "openai/gemma"
    assert context.model_for("senator#1") == "sim/strong"
    assert context.model_for("consul#1") == "sim/medium"
    assert context.merges_system_prompt("senator#2") and context.merges_system_prompt("senator#2~2")
    assert not context.merges_system_prompt("senator#1")


def test_settings_by_model_name_see_a_seats_model(tmp_path: Path) -> None:
    """models.endpoints and models.prices may name a model only one seat uses."""
    models = ["sim/strong", "sim/weak", "sim/medium", "sim/strong", "openai/seat-five"]
    section = (
        "  endpoints:\n    openai/seat-five: {api_base: 'http://127.0.0.1:9/v1'}\n"
        "  prices:\n    openai/seat-five: {input: 1.0, output: 2.0}\n"
    )
    write(tmp_path, "pyproject.toml", "")
    manifest = write(tmp_path, "senate.yaml", senate(models, section))
    prepared = prepare(RunRequest(manifest, limit=1, out=tmp_path / "run", data=SAMPLE))
    assert prepared.context.router.base_of("openai/seat-five") == "http://127.0.0.1:9/v1"
    assert prepared.context.model_for("senator#5") == "openai/seat-five"
    assert not prepared.simulated
    prepared.ledger.close()


def test_a_models_list_of_the_wrong_length_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "senate.yaml", senate(MIXED[:3]))
    write(tmp_path, "pyproject.toml", "")
    (error,) = spec_errors(path)
    line = senate(MIXED[:3]).splitlines().index("      models: [sim/strong, sim/weak, sim/medium]")
    assert (error.line, error.column, error.file.endswith("senate.yaml")) == (line + 1, 7, True)
    assert "models lists 3 models for 5 seats: give one per seat" in error.message


def test_a_manifests_seats_of_the_wrong_length_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = senate(None, "  seats:\n    senator: [sim/weak, sim/strong]\n")
    path = write(tmp_path, "senate.yaml", text)
    write(tmp_path, "pyproject.toml", "")
    (error,) = spec_errors(path)
    assert error.line == text.splitlines().index("    senator: [sim/weak, sim/strong]") + 1
    assert error.column == 5
    assert "2 models for the 5 seat(s) of 'senator': give one per seat" in error.message


def test_model_and_models_together_are_an_error(tmp_path: Path) -> None:
    text = senate().replace(SENATOR_SEATS, SENATOR_SEATS + "      model: sim/weak\n")
    path = write(tmp_path, "senate.yaml", text)
    write(tmp_path, "pyproject.toml", "")
    (error,) = spec_errors(path)
    assert "give model (every seat) or models (one per seat), not both" in error.message
    assert error.line > 1 and error.column >= 1
