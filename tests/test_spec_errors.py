"""Malformed specs: each must give one FILE:LINE:COL error naming the problem, no traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import TINY, spec_errors, write


def edit(old: str, new: str, count: int = 1) -> str:
    assert TINY.count(old) >= 1, old
    return TINY.replace(old, new, count)


VOTE_STAGE = """\
  - id: check
    kind: vote
    voters: [checker, {voter}]
    purpose: Vote on it.
    next:
      pass: end
      fail: {{to: write, max_visits: 2, exhausted: end}}
      unparsable: end
"""
CHECK_STAGE = TINY[TINY.index("  - id: check\n") : TINY.index("  - id: end")]


def with_vote(voter: str = "writer", extra: str = "") -> str:
    """TINY as a consensus institution whose 'check' stage is a vote."""
    stage = VOTE_STAGE.format(voter=voter).replace("    purpose: Vote", f"{extra}    purpose: Vote")
    return TINY.replace(CHECK_STAGE, stage).replace("gated_pipeline", "consensus")


# (case id, spec text, expected line, expected words in the message)
CASES: list[tuple[str, str, int, str]] = [
    (
        "bad_indentation",
        edit("    role: writer", "      role: writer"),
        17,
        "invalid YAML: mapping values are not allowed",
    ),
    ("tab_indentation", edit("    role: writer", "\trole: writer"), 17, "invalid YAML"),
    (
        "duplicate_key",
        edit("    role: writer\n", "    role: writer\n    role: checker\n"),
        18,
        "duplicate key 'role' (first given at line 17)",
    ),
    (
        "unknown_top_key",
        edit("entry: write", "entry: write\nentyr: write"),
        14,
        "unknown key 'entyr' (did you mean 'entry'?)",
    ),
    (
        "unknown_stage_key",
        edit("purpose: Write it.", "purpse: Write it."),
        18,
        "unknown key 'purpse' (did you mean 'purpose'?)",
    ),
    (
        "unknown_route_key",
        edit("max_visits: 2", "max_visit: 2"),
        26,
        "unknown key 'max_visit' (did you mean 'max_visits'?)",
    ),
    (
        "wrong_kind",
        edit("kind: review", "kind: reveiw"),
        21,
        "unknown stage kind 'reveiw' (did you mean 'review'?)",
    ),
    ("missing_kind", edit("    kind: review\n", ""), 20, "a stage needs a 'kind'"),
    ("missing_entry", edit("entry: write\n", ""), 1, "missing required key 'entry'"),
    (
        "missing_role",
        edit("    role: checker\n", ""),
        20,
        "missing required key 'role' in this review stage",
    ),
    (
        "entry_not_a_stage",
        edit("entry: write", "entry: wirte"),
        13,
        "no stage 'wirte' (did you mean 'write'?)",
    ),
    (
        "role_not_a_role",
        edit("role: writer", "role: wrtier"),
        17,
        "no role 'wrtier' (did you mean 'writer'?)",
    ),
    (
        "dangling_transition",
        edit("approve: end", "approve: ending"),
        25,
        "no stage 'ending' (did you mean 'end'?)",
    ),
    ("dangling_exhausted", edit("exhausted: end", "exhausted: nowhere"), 26, "no stage 'nowhere'"),
    (
        "unrouted_decision",
        edit("      unparsable: end\n", ""),
        24,
        "decision 'unparsable' of stage 'check' is not routed",
    ),
    (
        "route_never_returned",
        edit("      approve: end\n", "      approve: end\n      amend: end\n"),
        26,
        "stage 'check' never returns 'amend'",
    ),
    (
        "decision_not_in_vocabulary",
        edit("    purpose: Check it.", "    decisions: [approve, deny]\n    purpose: Check it."),
        23,
        "a review stage cannot return 'deny'",
    ),
    (
        "unparsable_listed",
        edit(
            "    purpose: Check it.", "    decisions: [approve, unparsable]\n    purpose: Check it."
        ),
        23,
        "'unparsable' is implicit",
    ),
    (
        "unreachable_stage",
        edit(
            "  - id: end\n",
            "  - id: orphan\n    kind: draft\n    role: writer\n    purpose: x\n"
            "    next: {done: end, unparsable: end}\n  - id: end\n",
        ),
        28,
        "stage 'orphan' can never be reached from the entry 'write'",
    ),
    (
        "unbounded_loop",
        edit("reject: {to: write, max_visits: 2, exhausted: end}", "reject: write"),
        26,
        "the loop check -> write -> check has no bound",
    ),
    ("half_a_bound", edit(", exhausted: end}", "}"), 26, "max_visits and exhausted go together"),
    (
        "voter_not_a_role",
        with_vote("senatr"),
        22,
        "no role 'senatr'",
    ),
    (
        "pipeline_with_gate",
        edit("pattern: gated_pipeline", "pattern: pipeline"),
        21,
        "a pipeline has no gates, but stage 'check' is a review",
    ),
    (
        "consensus_without_vote",
        edit("pattern: gated_pipeline", "pattern: consensus"),
        4,
        "a consensus institution needs at least one vote stage",
    ),
    (
        "unknown_pattern",
        edit("pattern: gated_pipeline", "pattern: gated_pipline"),
        4,
        "'gated_pipline' is not allowed for 'pattern' (did you mean 'gated_pipeline'?)",
    ),
    (
        "wrong_type",
        edit("    title: Writer\n", "    title: Writer\n    seats: many\n"),
        9,
        "'seats': input should be a valid integer",
    ),
    (
        "invalid_id",
        edit("  - id: write\n", "  - id: Write It\n"),
        15,
        "'Write It' is not a valid id for 'id'",
    ),
    (
        "duplicate_stage_id",
        edit(
            "  - id: end\n    kind: terminal\n",
            "  - id: end\n    kind: terminal\n  - id: end\n    kind: terminal\n",
        ),
        30,
        "duplicate stage id 'end'",
    ),
    (
        "supermajority_without_threshold",
        with_vote(extra="    rule: supermajority\n"),
        20,
        "a supermajority vote needs a threshold",
    ),
    (
        "no_quorum_unrouted",
        with_vote(extra="    quorum: 0.5\n"),
        25,
        "decision 'no_quorum' of stage 'check'",
    ),
    (
        "merge_key",
        TINY + "extra: &base {a: 1}\nother:\n  <<: *base\n",
        32,
        "merge keys ('<<') are not supported",
    ),
    ("empty_file", "", 1, "the file is empty"),
    ("top_level_list", "- id: x\n", 1, "expected a mapping of keys at the top level"),
    ("not_a_spec", "id: x\nname: y\n", 1, "not a govern spec"),
]


@pytest.mark.parametrize(
    ("text", "line", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_spec_reports_line_and_message(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, "spec.yaml", text)
    errors = spec_errors(path)
    matching = [e for e in errors if message in e.message]
    assert matching, f"no error containing {message!r}; got: {[str(e) for e in errors]}"
    assert matching[0].line == line, str(matching[0])
    assert str(matching[0]).startswith(f"{matching[0].file}:{line}:")
    assert str(matching[0]).split(": error: ")[0].endswith(f":{line}:{matching[0].column}")


def test_there_are_at_least_25_malformed_cases() -> None:
    assert len(CASES) >= 25


MANIFEST = textwrap.dedent("""\
    id: m
    institution: {ref}
    models:
      default: sim/medium
    """)


def test_manifest_institution_path_escaping_the_project(project: Path) -> None:
    path = write(project / "manifests", "m.yaml", MANIFEST.format(ref="../../outside.yaml"))
    (error,) = spec_errors(path)
    assert error.line == 2
    assert "points outside the project folder" in error.message


def test_manifest_absolute_institution_path(project: Path) -> None:
    path = write(project, "m.yaml", MANIFEST.format(ref="/etc/hostname"))
    (error,) = spec_errors(path)
    assert (error.line, "points outside the project folder" in error.message) == (2, True)


def test_manifest_missing_institution_file(project: Path) -> None:
    path = write(project, "m.yaml", MANIFEST.format(ref="nope.yaml"))
    (error,) = spec_errors(path)
    assert error.line == 2 and "'nope.yaml' does not exist" in error.message


def test_manifest_extends_loop(project: Path) -> None:
    write(project, "inst.yaml", TINY)
    write(project, "a.yaml", "id: a\nextends: b.yaml\ninstitution: inst.yaml\n")
    path = write(project, "b.yaml", "id: b\nextends: a.yaml\n")
    (error,) = spec_errors(path)
    assert "extend each other in a loop: b.yaml -> a.yaml -> b.yaml" in error.message
    assert error.file.endswith("a.yaml") and error.line == 2


def test_manifest_role_model_for_unknown_role(project: Path) -> None:
    write(project, "inst.yaml", TINY)
    path = write(
        project, "m.yaml", "id: m\ninstitution: inst.yaml\nmodels:\n  roles:\n    wrter: sim/weak\n"
    )
    (error,) = spec_errors(path)
    assert error.line == 5 and "no role 'wrter' in the institution (did you mean 'writer'?)" in (
        error.message
    )


def test_errors_inside_a_referenced_institution_point_into_that_file(project: Path) -> None:
    write(project, "inst.yaml", TINY.replace("role: writer", "role: wrtier"))
    path = write(project, "m.yaml", MANIFEST.format(ref="inst.yaml"))
    (error,) = spec_errors(path)
    assert error.file.endswith("inst.yaml") and error.line == 17


def test_errors_inside_an_inline_institution_point_into_the_manifest(project: Path) -> None:
    inline = textwrap.indent(TINY.replace("role: writer", "role: wrtier"), "  ")
    path = write(project, "m.yaml", f"id: m\ninstitution:\n{inline}")
    (error,) = spec_errors(path)
    assert error.file.endswith("m.yaml") and error.line == 17 + 2


def test_a_stage_exhausted_route_must_lead_to_an_unbounded_stage(tmp_path: Path) -> None:
    text = TINY.replace(
        "    purpose: Write it.\n",
        "    purpose: Write it.\n    max_visits: 2\n    exhausted: check\n",
    ).replace(
        "    purpose: Check it.\n",
        "    purpose: Check it.\n    max_visits: 2\n    exhausted: end\n",
    )
    (error,) = spec_errors(write(tmp_path, "spec.yaml", text))
    assert error.line == 20 and "'check' has its own max_visits" in error.message
