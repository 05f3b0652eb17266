"""The shipped institutions and manifests: valid, with known fingerprints."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from govern.spec.checks import checked_institution, load_checked
from govern.spec.fingerprint import fingerprint
from govern.spec.schema import spec_json_schema
from tests.conftest import ROOT

SHIPPED = sorted((ROOT / "institutions").glob("**/*.yaml")) + sorted(
    (ROOT / "manifests").glob("*.yaml")
)
# Experiments (grids of the others) have no fingerprint of their own: test_experiment_spec.py
SPECS = [p for p in SHIPPED if "\nkind: experiment\n" not in p.read_text()]

# roles, agents, stages, gates, branches, loops, depth, shortest and longest happy-path calls
GOLDEN = {
    "athens": (4, 15, 9, 2, 4, 2, 4, 12, 12),
    "athens_first_edition": (4, 8, 6, 2, 2, 2, 2, 8, 8),
    "venice": (6, 70, 23, 6, 11, 4, 17, 9, 391),
    "sejm": (4, 10, 6, 2, 2, 1, 3, 10, 10),
    "bare": (1, 1, 2, 0, 0, 0, 1, 1, 1),
    "edo": (4, 7, 5, 1, 1, 1, 3, 7, 7),
    "mongol": (5, 5, 6, 0, 0, 0, 5, 5, 5),
    "qin_han": (5, 5, 5, 0, 3, 3, 2, 4, 4),
    "qin_han_first_edition": (5, 5, 6, 0, 0, 0, 5, 5, 5),
    "soviet": (5, 7, 6, 0, 0, 0, 5, 7, 7),
    "tang": (9, 9, 6, 1, 1, 1, 4, 10, 10),
    "us_federal": (7, 13, 10, 5, 5, 4, 1, 12, 12),
    "senate": (3, 7, 7, 2, 2, 3, 2, 13, 13),
    "chancery_governed": (3, 3, 3, 1, 1, 1, 1, 2, 2),
    "cournot_market": (1, 2, 2, 0, 0, 0, 1, 2, 2),
    "cournot_ungoverned": (1, 2, 2, 0, 0, 0, 1, 2, 2),
    "cournot_constitutional": (1, 2, 2, 0, 0, 0, 1, 2, 2),
    "cournot_institutional": (1, 2, 2, 0, 0, 0, 1, 2, 2),
    "maker": (1, 1, 3, 0, 1, 0, 1, 3, 3),
    "maker_hanoi": (1, 1, 3, 0, 1, 0, 1, 3, 3),
    "decomposed": (3, 3, 3, 0, 1, 0, 1, 4, 4),
    "decomposed_dti": (3, 3, 3, 0, 1, 0, 1, 4, 4),
}


def test_the_historical_institutions_and_the_baseline_ship() -> None:
    names = {p.stem for p in (ROOT / "institutions").glob("*.yaml")}
    seven = {"athens", "qin_han", "tang", "mongol", "us_federal", "edo", "soviet"}
    assert names == seven | {"venice", "sejm", "bare"}
    # the topologies the second edition replaced stay available for comparisons
    kept = {p.stem for p in (ROOT / "institutions" / "first_edition").glob("*.yaml")}
    assert kept == {"athens", "qin_han"}
    markets = {p.stem for p in (ROOT / "institutions" / "markets").glob("*.yaml")}
    assert markets == {"cournot_market"}
    maker = {p.stem for p in (ROOT / "institutions" / "maker").glob("*.yaml")}
    assert maker == {"maker", "decomposed", "decomposed_dti"}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_spec_is_valid_and_matches_its_golden_fingerprint(path: Path) -> None:
    institution = checked_institution(load_checked(path))
    got = fingerprint(institution).model_dump()
    name = path.stem if path.parent.name == "manifests" else institution.id
    assert tuple(got.values()) == GOLDEN[name], got


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_spec_names_the_schema_and_the_schema_accepts_it(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    schema_path = (path.parent / first.split("$schema=")[1]).resolve()
    assert schema_path == ROOT / "schemas" / "govern.schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_shipped_schema_is_current() -> None:
    shipped = json.loads((ROOT / "schemas" / "govern.schema.json").read_text())
    assert shipped == spec_json_schema(), "run `make schema` to regenerate schemas/"


def test_schema_rejects_what_the_loader_rejects() -> None:
    schema = spec_json_schema()
    bad = yaml.safe_load((ROOT / "institutions" / "bare.yaml").read_text())
    bad["stages"][0]["kind"] = "vot"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_senate_is_a_consensus_institution_with_quorum_veto_and_bounded_reproposal() -> None:
    institution = checked_institution(load_checked(ROOT / "manifests" / "senate.yaml"))
    assert institution.pattern == "consensus"
    division = institution.stage("division")
    assert division.kind == "vote" and division.quorum is not None
    tribune = institution.stage("intercession")
    assert tribune.possible_decisions == ("approve", "veto", "unparsable")
    assert tribune.next["veto"].to == "motion"
    assert institution.stage("motion").max_visits == 3


def test_us_judicial_invalidation_sends_the_work_back() -> None:
    institution = checked_institution(load_checked(ROOT / "institutions" / "us_federal.yaml"))
    assert institution.stage("judicial_review").next["reject"].to == "committee_draft"
    assert institution.stage("presidential_review").next["veto"].to == "veto_override"
