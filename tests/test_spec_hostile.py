"""Hostile spec files: each is refused with one FILE:LINE:COL error, quickly, never a traceback.

Tags, recursive aliases, alias bombs, deep nesting, huge files, FIFOs and devices,
control characters in values and file names, and specs big enough to expose
quadratic checks or an exponential fingerprint.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings

from govern.discovery import Found
from govern.spec.checks import check_institution, checked_institution, load_checked
from govern.spec.errors import MAX_ERRORS_PER_FILE, SpecError, SpecInvalid, escape_controls
from govern.spec.fingerprint import fingerprint, stage_calls
from govern.spec.graph import HAPPY_DECISIONS, governance_graph
from govern.spec.loader import LoadedInstitution
from govern.spec.models import Institution
from govern.spec.validation import suggest
from govern.spec.yaml_source import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    parse_yaml,
    read_yaml,
)
from tests.conftest import TINY, run_cli, spec_errors, write
from tests.test_graph_properties import institutions as random_institutions

ERROR_LINE = re.compile(r"^.+:\d+:\d+: error: \S.*$")


def parse_errors(text: str) -> list[SpecError]:
    try:
        parse_yaml(text, "f.yaml")
    except SpecInvalid as exc:
        return exc.errors
    return []


def only_error(text: str) -> SpecError:
    errors = parse_errors(text)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


# Tags ------------------------------------------------------------------------------------

TAGS = [
    ("era: !!bool yes", "!!bool"),
    ("era: !!int 3", "!!int"),
    ("era: !!timestamp 2001-01-01", "!!timestamp"),
    ("era: !!python/object/apply:os.system [echo]", "!!python/object/apply:os.system"),
    ("era: !!python/name:os.system ''", "!!python/name:os.system"),
    ("era: !foo x", "!foo"),
    ("era: ! x", "'!'"),
    ("era: !<tag:yaml.org,2002:str> x", "!!str"),
    ("era: !<tag:example.com,2000:x> x", "!<tag:example.com,2000:x>"),
    ("era: !!binary aGk=", "!!binary"),
    ("era: !!set {a, b}", "!!set"),
    ("era: !!omap [a: 1]", "!!omap"),
    ("era: !!map {a: 1}", "!!map"),
    ("!!str era: now", "!!str"),
]


@pytest.mark.parametrize(("line", "tag"), TAGS, ids=[t for _, t in TAGS])
def test_every_explicit_tag_is_refused_at_its_position(tmp_path: Path, line: str, tag: str) -> None:
    path = write(tmp_path, "spec.yaml", TINY.replace("era: now", line))
    (error,) = spec_errors(path)
    assert error.line == 3 and error.column == (1 if line.startswith("!") else 6), str(error)
    assert tag.strip("'") in error.message and "plain YAML" in error.message


# Aliases ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["a: &a [*a]", "a: &a {b: *a}", "a: &a {b: &b [c, *a]}", "a: &a\n  b:\n    - *a"],
    ids=["sequence", "mapping", "nested", "block"],
)
def test_a_self_referencing_alias_is_refused(text: str) -> None:
    error = only_error(text)
    assert "refers to the node that contains it" in error.message and error.line >= 1


def test_undefined_and_duplicate_anchors_are_errors() -> None:
    assert "has no anchor '&nope'" in only_error("a: *nope").message
    error = only_error("a: &x 1\nb: &x 2\n")
    assert (error.line, "defined twice" in error.message) == (2, True)


def alias_bomb(levels: int, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ",".join(["lol"] * width) + "]"]
    lines += [f"a{k}: &a{k} [" + ",".join([f"*a{k - 1}"] * width) + "]" for k in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [5, 9, 12])
def test_an_alias_bomb_is_refused_at_once(tmp_path: Path, levels: int) -> None:
    path = write(tmp_path, "bomb.yaml", alias_bomb(levels))
    assert path.stat().st_size < 600
    start = time.process_time()
    (error,) = spec_errors(path)
    assert time.process_time() - start < 1.0
    assert f"more than {MAX_ALIAS_NODES:,} nodes" in error.message
    assert error.line == 5  # 9 + 81 + 729 + 6561: the fifth line passes the budget


def test_aliases_within_the_budget_load_and_errors_point_at_the_anchor(tmp_path: Path) -> None:
    text = TINY.replace(
        "roles:\n  - id: writer\n    title: Writer\n",
        "roles:\n  - &w\n    id: writer\n    title: Writer\n",
    ).replace("    instructions: Check.\n", "    instructions: Check.\n  - *w\n")
    errors = spec_errors(write(tmp_path, "spec.yaml", text))
    (duplicate,) = [e for e in errors if "duplicate role id" in e.message]
    assert duplicate.line == 8  # the aliased role's id, where the anchor wrote it
    parsed = parse_yaml(text, "f.yaml")
    assert parsed.data["roles"][2] == parsed.data["roles"][0]


# Depth, size, documents, scalars ---------------------------------------------------------


def test_nesting_is_bounded_without_recursion() -> None:
    ok = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # the top mapping is one level
    assert parse_yaml(ok, "f.yaml").data["a"]
    error = only_error("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert (error.line, error.column) == (1, 4 + MAX_DEPTH - 1)
    assert f"nesting deeper than {MAX_DEPTH} levels" in error.message
    block = "".join(" " * i + "k:\n" for i in range(1_000))
    assert "nesting deeper" in only_error(block).message
    for depth in (500, 100_000):
        start = time.process_time()
        (error,) = parse_errors("a: " + "[" * depth + "]" * depth)
        assert time.process_time() - start < 1.0 and "nesting deeper" in error.message


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * MAX_FILE_BYTES + b"\n")
    error = only_read_error(path)
    assert (error.line, "larger than 1 MiB" in error.message) == (1, True)


def only_read_error(path: Path) -> SpecError:
    with pytest.raises(SpecInvalid) as caught:
        read_yaml(path)
    (error,) = caught.value.errors
    return error


def in_a_thread(work: Any, seconds: float = 10.0) -> Any:
    """``work()`` in a daemon thread; fails if it has not returned in time (a hang)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    return result[0]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: os.mkfifo(p), "is a FIFO"),
        (lambda p: p.symlink_to("/dev/zero"), "is a device"),
        (lambda p: p.symlink_to("/dev/urandom"), "is a device"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: p.symlink_to(p.parent / "nowhere"), "no such file"),
    ],
    ids=["fifo", "dev_zero", "dev_urandom", "folder", "dangling_link"],
)
def test_what_is_not_a_regular_file_is_refused_without_blocking(
    tmp_path: Path, make: Any, words: str
) -> None:
    path = tmp_path / "spec.yaml"
    make(path)
    errors = in_a_thread(lambda: spec_errors(path))
    assert len(errors) == 1 and words in errors[0].message, errors


def test_one_document_per_file() -> None:
    error = only_error("a: 1\n---\nb: 2\n")
    assert (error.line, "second YAML document" in error.message) == (2, True)


def test_scalars_yaml_cannot_construct_are_errors_or_text() -> None:
    parsed = parse_yaml("a: =\nb: <<\nc: 0x1f\nd: 2001-01-02\n", "f.yaml").data
    assert parsed["a"] == "=" and parsed["b"] == "<<" and parsed["c"] == 31
    for value in ("2001-13-45", "9" * 5000):
        error = only_error(f"x: 1\ny: {value}\n")
        assert (error.line, error.column) == (2, 4)
        assert "quote it to keep it as text" in error.message and len(error.message) < 400


def test_a_reader_error_is_placed_after_non_ascii_text() -> None:
    error = only_error("é: ü\nb: \x07\n")
    assert (error.line, error.column) == (2, 4) and "U+0007" in error.message


def test_invalid_utf8_is_placed_at_its_byte(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"id: x\nname: caf\xe9\n")
    error = only_read_error(path)
    assert (error.line, error.column) == (2, 10) and "not UTF-8" in error.message


# Control characters ----------------------------------------------------------------------


def test_error_lines_never_carry_control_characters() -> None:
    hostile = "a\x00b\x1b[2J\x9b31m\u202e\udcff\nforged.yaml:1:1: error: x\u2028"
    error = SpecError(hostile, 1, 1, hostile)
    text = str(error)
    assert text.isprintable() and "\n" not in text
    for shown in ("\\x00", "\\x1b[2J", "\\x9b", "\\u202e", "\\udcff", "\\x0a", "\\u2028"):
        assert shown in error.message and shown in error.file
    assert escape_controls("C:\\specs\\tang.yaml ≤ 3 é") == "C:\\specs\\tang.yaml ≤ 3 é"
    assert all(str(v).isprintable() for v in error.as_dict().values())


def test_a_value_with_escape_sequences_is_echoed_escaped(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", TINY.replace("id: tiny", 'id: "\\e[31mred\\0"'))
    (error,) = spec_errors(path)
    assert "'\\x1b[31mred\\x00' is not a valid id" in error.message
    assert str(error).isprintable()


def test_a_file_name_with_escape_sequences_is_shown_escaped(tmp_path: Path) -> None:
    path = write(tmp_path, "a\x1b[2Jb.yaml", "")
    (error,) = spec_errors(path)
    assert error.file.endswith("a\\x1b[2Jb.yaml") and str(error).isprintable()


def test_govern_list_entries_are_printable() -> None:
    found = Found("institution", "x\x1b.yaml", "name\x00" + "n" * 500)
    assert found.path == "x\\x1b.yaml" and found.summary.isprintable()
    assert len(found.summary) < 300


# Caps on errors and messages -------------------------------------------------------------


def test_errors_are_capped_per_file_with_a_count_of_the_rest() -> None:
    many = [SpecError("a.yaml", line, 1, f"problem {line}") for line in range(120, 0, -1)]
    few = [SpecError("b.yaml", 3, 1, "other")]
    invalid = SpecInvalid(many + few)
    a_errors = [e for e in invalid.errors if e.file == "a.yaml"]
    assert len(a_errors) == MAX_ERRORS_PER_FILE + 1 and invalid.total == 121
    assert [e.line for e in a_errors[:-1]] == list(range(1, MAX_ERRORS_PER_FILE + 1))
    last = a_errors[-1]
    assert last.line == MAX_ERRORS_PER_FILE + 1 and "and 70 more errors" in last.message
    assert [e.file for e in invalid.errors].count("b.yaml") == 1


def test_a_long_message_is_cut() -> None:
    error = SpecError("a.yaml", 1, 1, "x" * 100_000)
    assert len(error.message) < 2100 and error.message.endswith("characters)")


# Size: linear checks, bounded suggestions, a linear fingerprint --------------------------

HEAD = """\
id: big
name: Big
era: now
pattern: gated_pipeline
history: generated
roles:
  - {id: a, title: A, instructions: Do.}
  - {id: j, title: J, instructions: Judge.}
entry: s0
stages:
"""


def big_institution(count: int, *, ids: str = "s{i}", route: str = "s{i}") -> str:
    """``count`` stages in a chain, every fourth a review sending back (bounded)."""
    lines = []
    for i in range(count):
        after = route.format(i=i + 1) if i + 1 < count else "end"
        this = ids.format(i=i)
        if i % 4 == 3:
            back = ids.format(i=i - 1)
            lines.append(
                f"  - {{id: {this}, kind: review, role: j, purpose: p, next: {{approve: {after},"
                f" unparsable: {after}, reject: {{to: {back}, max_visits: 2, exhausted: {after}}}"
                "}}"
            )
        else:
            lines.append(
                f"  - {{id: {this}, kind: draft, role: a, purpose: p, "
                f"next: {{done: {after}, unparsable: {after}}}}}"
            )
    lines.append("  - {id: end, kind: terminal}")
    entry = ids.format(i=0)
    return HEAD.replace("entry: s0", f"entry: {entry}") + "\n".join(lines) + "\n"


def test_a_10000_stage_institution_validates_in_seconds(tmp_path: Path) -> None:
    path = write(tmp_path, "big.yaml", big_institution(10_000))
    assert path.stat().st_size < MAX_FILE_BYTES
    start = time.process_time()
    institution = checked_institution(load_checked(path))
    fingerprint(institution)
    # Quadratic checks took 24 s for 3,000 stages and over 5 minutes for 10,000.
    assert time.process_time() - start < 20


def test_thousands_of_duplicate_ids_are_cheap(tmp_path: Path) -> None:
    text = big_institution(4_000, ids="s", route="s")
    start = time.process_time()
    errors = spec_errors(write(tmp_path, "dup.yaml", text))
    assert time.process_time() - start < 10
    assert len(errors) == MAX_ERRORS_PER_FILE + 1 and "more errors" in errors[-1].message


def test_a_thousand_unknown_names_give_few_short_errors(tmp_path: Path) -> None:
    text = big_institution(1_000, ids="stage_number_{i}", route="stage_numbr_{i}")
    start = time.process_time()
    errors = spec_errors(write(tmp_path, "typos.yaml", text))
    assert time.process_time() - start < 5
    assert len(errors) == MAX_ERRORS_PER_FILE + 1
    assert sum(len(str(e)) for e in errors) < 60_000  # was 18 MB
    first = errors[0].message
    assert "(did you mean 'stage_number_1'?)" in first and "(1001 in all)" in first


def test_suggestions_over_a_large_set_find_one_edit() -> None:
    ids = [f"stage_{i}" for i in range(5_000)]
    assert suggest("stage_4999x", ids) == " (did you mean 'stage_4999'?)"
    assert suggest("stgae_12", ids) == " (did you mean 'stage_12'?)"
    assert suggest("entirely_else", ids) == ""
    assert suggest("x" * 10_000, ["x"]) == ""


def loopy(count: int = 25) -> str:
    """Reviews that approve one ahead, amend two ahead, reject three back, veto to the start."""
    lines = []
    for i in range(count):
        one, two = (f"s{i + k}" if i + k < count else "end" for k in (1, 2))
        lines.append(
            f"  - {{id: s{i}, kind: review, role: j, purpose: p, decisions: [approve, amend, "
            f"reject, veto], next: {{approve: {one}, amend: {two}, unparsable: end, "
            f"reject: {{to: s{max(0, i - 3)}, max_visits: 2, exhausted: {one}}}, "
            f"veto: {{to: s0, max_visits: 1, exhausted: end}}}}}}"
        )
    lines.append("  - {id: end, kind: terminal}")
    return HEAD + "\n".join(lines) + "\n"


def test_the_fingerprint_of_a_loopy_institution_is_immediate(tmp_path: Path) -> None:
    institution = checked_institution(load_checked(write(tmp_path, "loopy.yaml", loopy())))
    start = time.process_time()
    print_ = fingerprint(institution)
    # Enumerating its 121,393 happy paths and 767,892 cycles took 7 s; 30 stages, minutes.
    assert time.process_time() - start < 1.0
    assert (print_.calls_shortest_happy_path, print_.calls_longest_happy_path) == (13, 25)
    assert print_.stages == 26 and print_.loops > 0


def brute_fingerprint(institution: Institution) -> tuple[int, int | None, int | None]:
    """(elementary cycles, cheapest and dearest simple happy path) by enumeration."""
    multi = governance_graph(institution)
    loops = sum(1 for _ in nx.simple_cycles(nx.DiGraph(multi)))
    happy = nx.DiGraph()
    happy.add_nodes_from(multi.nodes)
    happy.add_edges_from(
        (u, v)
        for u, v, d in multi.edges(data=True)
        if d["edge"].via == "route" and d["edge"].decision in HAPPY_DECISIONS
    )
    goals = [s.id for s in institution.stages if s.kind == "terminal" and s.outcome == "completed"]
    costs = [
        sum(stage_calls(institution, n) for n in path)
        for goal in goals
        for path in nx.all_simple_paths(happy, institution.entry, goal)
    ]
    if institution.entry in goals:
        costs.append(0)
    if not costs:
        return loops, None, None
    return loops, min(costs), max(costs)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(random_institutions())
def test_the_linear_fingerprint_agrees_with_enumeration(data: dict[str, Any]) -> None:
    institution = Institution.model_validate(data)
    got = fingerprint(institution)
    loops, cheapest, dearest = brute_fingerprint(institution)
    assert got.calls_shortest_happy_path == cheapest
    assert (got.calls_longest_happy_path is None) == (dearest is None)
    happy_acyclic = nx.is_directed_acyclic_graph(
        nx.DiGraph(
            [
                (e.source, e.target)
                for _, _, d in governance_graph(institution).edges(data=True)
                if (e := d["edge"]).via == "route" and e.decision in HAPPY_DECISIONS
            ]
        )
    )
    if happy_acyclic:
        assert got.calls_longest_happy_path == dearest
    elif dearest is not None:
        assert got.calls_longest_happy_path >= dearest
    assert (got.loops == 0) == (loops == 0) and got.loops <= loops
    checked = check_institution(
        LoadedInstitution(institution, parse_yaml("id: x\n", "random.yaml"))
    )
    assert all(ERROR_LINE.match(str(e)) for e in checked)


# References and the command line ---------------------------------------------------------


def test_a_reference_with_a_nul_or_a_long_extends_chain_is_an_error(project: Path) -> None:
    write(project, "tiny.yaml", TINY)
    (error,) = spec_errors(write(project, "m.yaml", 'id: m\ninstitution: "tiny\\0.yaml"\n'))
    assert error.line == 2 and "not a file name" in error.message
    write(project, "m0.yaml", "id: m0\ninstitution: tiny.yaml\n")
    for i in range(1, 40):
        write(project, f"m{i}.yaml", f"id: m{i}\nextends: m{i - 1}.yaml\n")
    (error,) = spec_errors(project / "m39.yaml")
    assert "manifests extend one another" in error.message


def test_validate_reports_every_file_of_a_folder_and_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    write(folder, "a_good.yaml", TINY)
    write(folder, "bomb.yaml", alias_bomb(9))
    write(folder, "deep.yaml", "a: " + "[" * 1000 + "]" * 1000)
    write(folder, "tag.yaml", "a: !!python/object/apply:os.system [echo]\n")
    write(folder, "self.yaml", "a: &a [*a]\n")
    write(folder, "escape.yaml", TINY.replace("id: tiny", 'id: "\\e[2J"'))
    write(folder, "z_good.yaml", TINY)
    os.mkfifo(folder / "fifo.yaml")
    (folder / "zero.yaml").symlink_to("/dev/zero")
    (folder / "binary.yaml").write_bytes(bytes(range(256)))
    result = run_cli("validate", str(folder))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert "2 valid, 8 invalid" in result.stderr
    lines = result.stdout.splitlines()
    for name in ("bomb", "deep", "tag", "self", "escape", "fifo", "zero", "binary"):
        assert any(f"{name}.yaml:" in line for line in lines), name
    assert all(ERROR_LINE.match(line) and line.isprintable() for line in lines)


def test_inspect_reports_every_bad_file_and_is_fast_on_loops(tmp_path: Path) -> None:
    good = write(tmp_path, "loopy.yaml", loopy())
    bad = [write(tmp_path, f"bad{i}.yaml", f"a: !!int {i}\n") for i in range(2)]
    result = run_cli("inspect", str(bad[0]), str(good), str(bad[1]))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert all(f"bad{i}.yaml:1:4: error: the tag '!!int'" in result.stderr for i in range(2))
    start = time.monotonic()
    result = run_cli("inspect", "--json", str(good))
    assert result.returncode == 0 and time.monotonic() - start < 30, result.stderr
    assert '"calls_longest_happy_path": 25' in result.stdout


def test_error_lines_are_unique_and_well_formed_for_a_mangled_spec(tmp_path: Path) -> None:
    text = "".join(itertools.islice(itertools.cycle(TINY.splitlines(keepends=True)), 200))
    errors = spec_errors(write(tmp_path, "mangled.yaml", text))
    assert errors and all(ERROR_LINE.match(str(e)) for e in errors)
