"""The second edition of the language, as a user meets it: drawn by `govern graph` (and the
report's SVG), scaffolded by `govern new --with`, reported at its line and column when wrong,
and completed by an editor from the JSON Schema."""

from __future__ import annotations

import hashlib
import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml

from govern.spec.checks import checked_institution, load_checked
from govern.spec.draw import draw
from govern.spec.scaffold import FEATURES, FeatureError, scaffold_institution
from govern.spec.svg import draw_svg
from tests.conftest import ROOT, spec_errors, write
from tests.conftest import run_cli as govern

VENICE = """\
id: venice
name: Venice
era: 1268-1797, Venice
pattern: consensus
history: Lots and elections chose the electors of the Doge.
roles:
  - id: council
    title: Councillor
    instructions: Serve when drawn.
    seats: 6
    models: [sim/strong, sim/medium, sim/medium, sim/medium, sim/weak, sim/weak]
  - id: doge
    title: Doge
    instructions: Propose a worked answer.
    office: {term: 3}
  - id: citizen
    title: Citizen
    instructions: Vote on the proposal.
    seats: 4
  - id: tribune
    title: Tribune
    instructions: Veto what is wrong.
  - id: clerk
    title: Clerk
    instructions: Check the record.
  - id: censor
    title: Censor
    instructions: Annul what is unlawful.
entry: office_check
stages:
  - id: office_check
    kind: office
    office: doge
    purpose: Is the Doge in his term?
    next: {held: proposal, vacant: lot_3}
  - id: lot_3
    kind: lot
    pool: [council]
    draw: 3
    purpose: Draw the electors.
    next: {done: nomination}
  - id: nomination
    kind: nominate
    nominees: {chosen_by: lot_3}
    purpose: Each elector stands.
    next: {done: election, unparsable: rejected}
  - id: election
    kind: vote
    voters: {chosen_by: lot_3}
    rule: plurality
    slate: nomination
    fills: doge
    purpose: Elect the Doge.
    next: {pass: proposal, fail: rejected, unparsable: rejected}
  - id: proposal
    kind: propose
    role: doge
    purpose: Propose an answer.
    max_visits: 3
    exhausted: rejected
    next: {done: assembly, unparsable: rejected}
  - id: assembly
    kind: vote
    voters: [citizen, tribune]
    rule: supermajority
    threshold: 25/41
    quorum: 0.5
    min_yes: 2
    abstain: true
    veto_by: [tribune]
    purpose: Vote on the proposal.
    next:
      pass: record
      fail: proposal
      no_quorum: proposal
      vetoed: rejected
      unparsable: rejected
  - id: record
    kind: review
    role: clerk
    decisions: [approve, annul]
    means: {annul: veto}
    purpose: Check the record.
    next: {approve: adopted, annul: rejected, unparsable: rejected}
  - id: adopted
    kind: terminal
  - id: rejected
    kind: terminal
    outcome: rejected
oversight:
  - role: censor
    watches: [proposal]
    rate: 1/2
    interventions: {annul: rejected}
    max_interventions: 1
"""


@pytest.fixture(scope="module")
def venice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("venice"), "venice.yaml", VENICE)


# --------------------------------------------------------------------------- drawings


def test_graph_draws_every_new_construct_in_mermaid(venice: Path) -> None:
    result = govern("graph", str(venice))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert 'lot_3[/"lot_3<br/>lot: draws 3 of council"/]' in out
    assert 'office_check[("office_check<br/>office doge: held/vacant")]' in out
    assert 'nomination[/"nomination<br/>nominate · nominees: chosen by lot_3"\\]' in out
    assert "vote · voters: chosen by lot_3<br/>plurality of slate nomination · fills doge" in out
    assert "propose · doge (office, term 3)" in out
    assert "veto by tribune · at least 2 yes · may abstain" in out
    assert 'record -->|"annul (veto)"| rejected' in out
    assert 'assembly ==>|"vetoed"| rejected' in out
    assert 'lot_3 -.-o|"chooses"| nomination' in out and 'lot_3 -.-o|"chooses"| election' in out
    assert "watches proposal<br/>rate 1/2 · at most 1 intervention per item" in out
    # the overseer's edge is red: linkStyle counts links from the start link (0)
    links = [line.strip() for line in out.splitlines() if "|" in line or "__start" in line]
    red = next(line for line in out.splitlines() if line.strip().startswith("linkStyle"))
    number = int(red.split()[1])
    assert links[number] == 'proposal -.->|"censor: annul"| rejected'
    assert "#c0392b" in red


def test_graph_draws_every_new_construct_in_dot(venice: Path) -> None:
    out = govern("graph", str(venice), "--format", "dot").stdout
    assert 'lot_3 [shape=parallelogram, label="lot_3\\nlot: draws 3 of council"]' in out
    assert "office_check [shape=cylinder" in out and "nomination [shape=trapezium" in out
    assert 'proposal -> rejected [label="censor: annul", style=dotted, color="#c0392b"' in out
    assert 'assembly -> rejected [label="vetoed", style=bold]' in out
    assert 'lot_3 -> election [label="chooses", style=dotted, arrowhead=odot' in out
    assert "__oversight_0 [shape=note" in out and "watches proposal" in out


def test_svg_draws_the_new_constructs(venice: Path) -> None:
    institution = checked_institution(load_checked(venice))
    svg = draw_svg(institution, prefix="v")
    assert draw_svg(institution, prefix="v") == svg
    root = ET.fromstring(svg)
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {s.id for s in institution.stages} <= texts
    assert {"lot: draws 3 of council", "plurality of slate nomination · fills doge"} <= texts
    assert "oversight: censor · watches proposal · rate 1/2 · at most 1 intervention per item" in (
        texts
    )
    assert {"censor: annul", "chooses"} <= texts
    assert 'stroke="#c0392b"' in svg and "<ellipse" in svg  # a red intervention, an office


# The drawings of the institutions shipped before the second edition, as they were: a new
# construct is drawn only where it appears.
SHIPPED_DRAWINGS = {
    # moved to institutions/first_edition/ with ids *_first_edition: the Mermaid drawing is
    # the same; DOT and SVG name the id, so theirs changed with it
    "first_edition/athens": ("52f6cf650fafb5ae", "55497bc82224e9fd", "b3198a1bcf1466f7"),
    "bare": ("9393ea379670015e", "0fd96606fbc0d11e", "e8325b7b148d0f5c"),
    "edo": ("d15481bd3e75a357", "63f18f0d5d02f7a9", "476a81a0c9e6485f"),
    "mongol": ("8734ae3da31db772", "ba57bf9f30eea062", "317718e2c350544e"),
    "first_edition/qin_han": ("c7375cba3793033e", "a414d146602e3ec1", "cf2ca7fa0f4a2c24"),
    "soviet": ("2d55d0ddeca34b84", "4ffe260695704c8e", "06ee907c31b4b729"),
    "tang": ("b0c3e872709f5962", "f0b1b3e46e31bcda", "f17ee37f09fef591"),
    "us_federal": ("308ede2659759c62", "3f40375477cc4d4d", "c191e58c2edb58ab"),
    "senate": ("4f354229c909572e", "eae4c8264e106527", "c1f78327dee48a83"),
    "chancery_governed": ("96c74d781d2fdb3d", "ccfd0fcbe6db3d04", "fc5e02baabde545c"),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_DRAWINGS))
def test_drawings_of_the_first_edition_institutions_are_unchanged(name: str) -> None:
    folder = "manifests" if name in ("senate", "chancery_governed") else "institutions"
    institution = checked_institution(load_checked(ROOT / folder / f"{name}.yaml"))
    drawings = (draw(institution, "mermaid"), draw(institution, "dot"), draw_svg(institution, "t1"))
    digests = tuple(hashlib.sha256(d.encode()).hexdigest()[:16] for d in drawings)
    assert digests == SHIPPED_DRAWINGS[name]


# --------------------------------------------------------------------------- govern new --with


def _all_combinations() -> list[tuple[str, frozenset[str]]]:
    patterns = ("pipeline", "gated_pipeline", "consensus", "autonomous_cluster")
    return [
        (pattern, frozenset(combo))
        for pattern in patterns
        for n in range(len(FEATURES) + 1)
        for combo in itertools.combinations(FEATURES, n)
    ]


def test_every_feature_combination_validates_or_is_refused_with_a_reason(tmp_path: Path) -> None:
    made: dict[str, set[str]] = {}
    for pattern, features in _all_combinations():
        try:
            text = scaffold_institution("X", pattern, features=features)
        except FeatureError as exc:
            assert "use --pattern" in str(exc) or "choose one" in str(exc), str(exc)
            continue
        errors = spec_errors(write(tmp_path, "x.yaml", text))
        assert errors == [], (pattern, sorted(features), [str(e) for e in errors])
        made.setdefault(pattern, set()).update(features)
    # every feature fits some pattern, and each pattern takes several
    assert set().union(*made.values()) == set(FEATURES)
    assert {p: len(f) >= 4 for p, f in made.items()} == dict.fromkeys(made, True)


# The richest template of each pattern, and the alternatives a feature chooses between
# (an office filled by lot or by election).
RUNNABLE = [
    ("pipeline", "lot,office,oversight,seat-models"),
    ("gated_pipeline", "office,slate,means,oversight,seat-models"),
    ("gated_pipeline", "office,lot"),
    ("consensus", "slate,veto,abstain,office,oversight,seat-models"),
    ("consensus", "lot,slate,abstain"),
    ("autonomous_cluster", "lot,office,oversight,seat-models"),
    ("autonomous_cluster", "office,slate"),
]


@pytest.mark.parametrize(("pattern", "features"), RUNNABLE, ids=lambda v: v)
def test_new_with_features_writes_a_spec_that_validates_and_runs(
    pattern: str, features: str, tmp_path: Path
) -> None:
    write(tmp_path, "pyproject.toml", "")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "govern.schema.json").write_text("{}")
    out = tmp_path / "institutions" / "mine.yaml"
    made = govern(
        "new", "institution", "Mine", "--pattern", pattern, "--with", features, "--out", str(out)
    )
    assert made.returncode == 0, made.stderr
    text = out.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schemas/govern.schema.json\n")
    assert f"# With: {', '.join(f for f in FEATURES if f in features.split(','))}" in text
    assert govern("validate", str(out)).returncode == 0
    run = tmp_path / "run"
    result = govern(
        "run", str(out), "--task", "gsm8k", "--limit", "2", "--out", str(run), cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((run / "summary.json").read_text())["n"] == 2


def test_new_refuses_a_feature_the_pattern_cannot_hold() -> None:
    result = govern("new", "institution", "X", "--pattern", "pipeline", "--with", "veto")
    assert result.returncode == 2 and result.stdout == ""
    assert "veto needs a vote on a motion, which a pipeline has not" in result.stderr
    assert "use --pattern consensus" in result.stderr and "Traceback" not in result.stderr
    typo = govern("new", "institution", "X", "--pattern", "consensus", "--with", "lot,vto")
    assert typo.returncode == 2 and "no feature 'vto'; features: lot, slate" in typo.stderr


def test_new_help_lists_the_features() -> None:
    text = govern("new", "--help").stdout
    assert "--with FEATURE[,FEATURE]" in text
    for feature in FEATURES:
        assert f"\n  {feature} " in text


# --------------------------------------------------------------------------- errors at their place


def _place(text: str, line_text: str, word: str) -> tuple[int, int]:
    """(line, column) of ``word`` on the only line containing ``line_text``."""
    (number,) = [n for n, line in enumerate(text.splitlines(), 1) if line_text in line]
    return number, text.splitlines()[number - 1].index(
        word, text.splitlines()[number - 1].index(line_text)
    ) + 1


# (case, old, new, the line it is on, the word the error points at, words of the message)
ERRORS = [
    (
        "own_word_unrouted",
        "next: {approve: adopted, annul: rejected, unparsable: rejected}",
        "next: {approve: adopted, unparsable: rejected}",
        "next: {approve: adopted, unparsable",
        "next",
        "decision 'annul' of stage 'record' is not routed",
    ),
    (
        "own_word_without_meaning",
        "    means: {annul: veto}\n",
        "",
        "decisions: [approve, annul]",
        "annul",
        "a review stage cannot return 'annul'",
    ),
    (
        "meaning_not_a_decision",
        "means: {annul: veto}",
        "means: {annul: veto, refer: reject}",
        "means: {annul",
        "refer",
        "'refer' has a meaning but is not listed under decisions",
    ),
    (
        "meaning_not_a_meaning",
        "means: {annul: veto}",
        "means: {annul: cancel}",
        "means: {annul",
        "cancel",
        "input should be 'approve', 'reject', 'amend' or 'veto'",
    ),
    (
        "chosen_by_a_missing_stage",
        "nominees: {chosen_by: lot_3}",
        "nominees: {chosen_by: lot_9}",
        "nominees: {chosen_by",
        "chosen_by",
        "no stage 'lot_9' (did you mean 'lot_3'?)",
    ),
    (
        "chosen_by_a_stage_that_chooses_none",
        "nominees: {chosen_by: lot_3}",
        "nominees: {chosen_by: record}",
        "nominees: {chosen_by",
        "chosen_by",
        "stage 'record' is a review stage and chooses no seats",
    ),
    ("lot_larger_than_its_pool", "draw: 3", "draw: 9", "draw: 9", "draw", "draws 9 seats from 6"),
    (
        "fills_a_role_that_is_no_office",
        "fills: doge",
        "fills: citizen",
        "fills: citizen",
        "fills",
        "role 'citizen' is not an office",
    ),
    (
        "fills_with_a_wrong_count",
        "    fills: doge\n",
        "    fills: doge\n    choose: 2\n",
        "fills: doge",
        "fills",
        "'doge' has 1 seat(s), but the stage chooses 2",
    ),
    (
        "office_no_stage_fills",
        "    fills: doge\n",
        "",
        "office: {term: 3}",
        "office",
        "no stage fills the office 'doge'",
    ),
    (
        "overseer_not_a_role",
        "role: censor",
        "role: censr",
        "role: censr",
        "role",
        "no role 'censr' (did you mean 'censor'?)",
    ),
    (
        "overseer_watches_a_missing_stage",
        "watches: [proposal]",
        "watches: [propsal]",
        "watches: [propsal]",
        "propsal",
        "no stage 'propsal' (did you mean 'proposal'?)",
    ),
    (
        "intervention_to_a_missing_stage",
        "interventions: {annul: rejected}",
        "interventions: {annul: rejectd}",
        "interventions: {annul",
        "annul",
        "no stage 'rejectd' (did you mean 'rejected'?)",
    ),
    (
        "models_not_one_per_seat",
        "models: [sim/strong, sim/medium, sim/medium, sim/medium, sim/weak, sim/weak]",
        "models: [sim/strong, sim/medium]",
        "models: [sim/strong, sim/medium]",
        "models",
        "models lists 2 models for 6 seats",
    ),
]


def test_the_example_is_valid(venice: Path) -> None:
    assert spec_errors(venice) == []


@pytest.mark.parametrize(
    ("old", "new", "line_text", "word", "message"),
    [c[1:] for c in ERRORS],
    ids=[c[0] for c in ERRORS],
)
def test_an_error_of_the_second_edition_points_at_its_key_or_value(
    tmp_path: Path, old: str, new: str, line_text: str, word: str, message: str
) -> None:
    assert VENICE.count(old) == 1, old
    text = VENICE.replace(old, new)
    path = write(tmp_path, "venice.yaml", text)
    errors = spec_errors(path)
    matching = [e for e in errors if message in e.message]
    assert matching, [str(e) for e in errors]
    line, column = _place(text, line_text, word)
    assert (matching[0].line, matching[0].column) == (line, column), str(matching[0])
    assert str(matching[0]).startswith(f"{path}:{line}:{column}: error: ")


# --------------------------------------------------------------------------- the JSON Schema


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((ROOT / "schemas" / "govern.schema.json").read_text())


def test_the_schema_accepts_every_new_construct(schema: dict) -> None:
    jsonschema.validate(yaml.safe_load(VENICE), schema)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    veto_by: [tribune]", "    veto_bye: [tribune]"),
        ("    draw: 3", "    drwa: 3"),
        ("nominees: {chosen_by: lot_3}", "nominees: {chosen_bi: lot_3}"),
        ("office: {term: 3}", "office: {trem: 3}"),
        ("    max_interventions: 1", "    max_intervention: 1"),
        ("means: {annul: veto}", "means: {annul: cancel}"),
        ("rule: plurality", "rule: plurailty"),
        ("threshold: 25/41", "threshold: two thirds"),
        ("rate: 1/2", "rate: half"),
    ],
)
def test_the_schema_rejects_a_typo_in_a_new_key_or_value(schema: dict, old: str, new: str) -> None:
    assert VENICE.count(old) == 1, old
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(VENICE.replace(old, new)), schema)


def test_a_share_is_a_number_or_a_fraction_in_the_schema(schema: dict) -> None:
    for share in (0.6, 1, "25/41", " 2 / 3 "):
        data = yaml.safe_load(VENICE)
        data["stages"][5]["threshold"] = share
        data["oversight"][0]["rate"] = share
        jsonschema.validate(data, schema)


NEW_FIELDS = {
    "ChosenBy": ["chosen_by"],
    "Office": ["term"],
    "Role": ["models", "office"],
    "VoteStage": [
        "voters", "rule", "threshold", "min_yes", "quorum", "abstain", "veto_by", "slate",
        "choose", "fills",
    ],
    "NominateStage": ["nominees"],
    "LotStage": ["pool", "draw", "fills"],
    "OfficeStage": ["office"],
    "ReviewStage": ["means"],
    "Oversight": ["role", "watches", "rate", "purpose", "interventions", "max_interventions"],
    "Institution": ["oversight"],
    "ModelChoice": ["seats"],
}  # fmt: skip


def test_every_new_field_is_described_and_its_choices_are_an_enum(schema: dict) -> None:
    defs = schema["$defs"]
    undescribed = [
        f"{model}.{field}"
        for model, fields in NEW_FIELDS.items()
        for field in fields
        if not defs[model]["properties"][field].get("description")
    ]
    assert undescribed == []
    means = defs["ReviewStage"]["properties"]["means"]["patternProperties"]
    assert next(iter(means.values()))["enum"] == ["approve", "reject", "amend", "veto"]
    rule = defs["VoteStage"]["properties"]["rule"]["enum"]
    assert {"plurality", "approval", "borda", "majority"} <= set(rule)
    assert defs["Office"]["properties"]["term"]["anyOf"][1]["const"] == "run"


ENTRY_CHOSEN_LATER = """\
id: backwards
name: Backwards
era: now
pattern: consensus
history: The voters are drawn after they vote.
roles:
  - {id: p, title: P, instructions: i, seats: 3}
entry: vote
stages:
  - id: vote
    kind: vote
    voters: {chosen_by: lot}
    purpose: Vote.
    next: {pass: lot, fail: end, unparsable: end}
  - id: lot
    kind: lot
    pool: [p]
    draw: 2
    purpose: Draw.
    next: {done: end}
  - id: end
    kind: terminal
"""


def test_an_entry_whose_body_a_later_stage_chooses_is_reported(tmp_path: Path) -> None:
    """networkx leaves the entry out of its dominators; nothing runs before it all the same."""
    errors = spec_errors(write(tmp_path, "backwards.yaml", ENTRY_CHOSEN_LATER))
    assert [str(e).split("yaml:")[1] for e in errors] == [
        "12:14: error: an item can reach 'vote' without passing 'lot', whose choice it takes: "
        "route every way to it through that stage"
    ]
