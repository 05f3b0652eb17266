"""Drawings and scaffolds that hold whatever a spec may hold: stage ids that are keywords of
DOT or Mermaid, free text with control characters, and any name given to `govern new`."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import xml.dom.minidom
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govern.cli import PATTERNS, main
from govern.spec.checks import checked_institution, load_checked
from govern.spec.draw import chooses_links, draw, edge_text
from govern.spec.errors import SpecInvalid
from govern.spec.graph import stage_edges
from govern.spec.models import Institution
from govern.spec.scaffold import institution_id, yaml_string
from govern.spec.svg import draw_svg
from govern.spec.yaml_source import parse_yaml
from tests.conftest import write

DOT_KEYWORDS = {"node", "edge", "graph", "digraph", "subgraph", "strict"}
# What Mermaid's flowchart lexer reads as a keyword at the start of a node id: these whole
# words, and these even as the start of a longer one (see govern/spec/draw.py).
MERMAID_WORDS = {"end", "call", "click", "href", "direction"}
MERMAID_STARTS = ("style", "class", "graph", "flowchart", "subgraph", "interpolate")

# Every stage id a keyword somewhere, on every kind of line a drawing has: a lot and the
# body it chose ('chooses'), solo stages, a bounded send-back, an overseer, two terminals.
KEYWORDS = """\
id: keywords
name: Keywords
era: now
pattern: gated_pipeline
history: Every stage is named after a keyword of DOT or Mermaid.
roles:
  - id: worker
    title: Worker
    seats: 3
    instructions: Work.
  - id: clerk
    title: Clerk
    instructions: Write.
  - id: censor
    title: Censor
    instructions: Watch.
entry: graph
stages:
  - id: graph
    kind: lot
    pool: [worker]
    draw: 2
    purpose: Draw the workers.
    next: {done: subgraph}
  - id: subgraph
    kind: cluster
    members: {chosen_by: graph}
    purpose: Work in parallel.
    next: {done: node, unparsable: node}
  - id: node
    kind: draft
    role: clerk
    purpose: Draft.
    next: {done: edge, unparsable: edge}
  - id: edge
    kind: review
    role: clerk
    purpose: Review.
    next:
      approve: style
      reject: {to: node, max_visits: 1, exhausted: strict}
      unparsable: strict
  - id: style
    kind: draft
    role: clerk
    purpose: Style.
    next: {done: class_a, unparsable: class_a}
  - id: class_a
    kind: draft
    role: clerk
    purpose: Class.
    next: {done: click, unparsable: click}
  - id: click
    kind: draft
    role: clerk
    purpose: Click.
    next: {done: call, unparsable: call}
  - id: call
    kind: draft
    role: clerk
    purpose: Call.
    next: {done: href, unparsable: href}
  - id: href
    kind: draft
    role: clerk
    purpose: Link.
    next: {done: flowchart_b, unparsable: flowchart_b}
  - id: flowchart_b
    kind: draft
    role: clerk
    purpose: Chart.
    next: {done: direction, unparsable: direction}
  - id: direction
    kind: draft
    role: clerk
    purpose: Direct.
    next: {done: digraph, unparsable: digraph}
  - id: digraph
    kind: execute
    role: clerk
    purpose: Carry out.
    next: {done: end, unparsable: end}
  - id: end
    kind: terminal
  - id: strict
    kind: terminal
    outcome: rejected
oversight:
  - role: censor
    watches: [digraph]
    rate: 1
    purpose: Annul a wrong result.
    interventions: {annul: strict}
    max_interventions: 1
"""


@pytest.fixture(scope="module")
def keywords(tmp_path_factory: pytest.TempPathFactory) -> Institution:
    path = write(tmp_path_factory.mktemp("keywords"), "keywords.yaml", KEYWORDS)
    return checked_institution(load_checked(path))


def expected_edges(institution: Institution) -> set[tuple[str, str]]:
    """Every (source, target) a drawing must link: start, routes, overseers, 'chooses'."""
    return {
        ("__start", institution.entry),
        *((edge.source, edge.target) for edge in stage_edges(institution)),
        *chooses_links(institution),
    }


# --------------------------------------------------------------------------- DOT

DOT_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|->|[^\s]')


def dot_id(token: str) -> str:
    """A DOT id token as the id it names; a bare keyword is not an id."""
    if token.startswith('"'):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token), token
    assert token.lower() not in DOT_KEYWORDS, f"bare keyword {token} used as an id"
    return token


def parse_dot(text: str) -> tuple[set[str], set[tuple[str, str]], int]:
    """(node ids, (source, target) edges, default-attribute statements) of the drawing, read
    one statement per line as `govern graph` writes them."""
    lines = text.splitlines()
    assert lines[0].startswith("digraph ") and lines[-1] == "}"
    nodes: set[str] = set()
    edges: set[tuple[str, str]] = set()
    defaults = 0
    for line in lines[1:-1]:
        tokens = DOT_TOKEN.findall(line)
        head = tokens[: tokens.index("[")] if "[" in tokens else tokens[:-1]
        assert tokens[-1] == ";", line
        if head in (["node"], ["edge"]):
            defaults += 1
        elif head == ["rankdir", "=", "TB"]:
            continue
        elif "->" in head:
            assert len(head) == 3 and head[1] == "->", line
            edges.add((dot_id(head[0]), dot_id(head[2])))
        else:
            assert len(head) == 1, line
            nodes.add(dot_id(head[0]))
    return nodes, edges, defaults


def test_dot_quotes_ids_that_are_keywords(keywords: Institution) -> None:
    out = draw(keywords, "dot")
    nodes, edges, defaults = parse_dot(out)
    assert defaults == 2  # only the drawing's own node [...] and edge [...], no stage's
    assert nodes == {s.id for s in keywords.stages} | {"__start", "__oversight_0"}
    assert edges == expected_edges(keywords)
    assert '    "node" [shape=box, label="node\\ndraft · clerk"];' in out
    assert '    __start -> "graph";' in out
    assert '    "graph" -> "subgraph" [label="chooses"' in out
    assert '    "edge" -> "node" [label="reject ≤1"];' in out
    assert '    "digraph" -> "strict" [label="censor: annul", style=dotted' in out
    assert "    end [shape=doublecircle" in out  # not a DOT keyword: as before


# --------------------------------------------------------------------------- Mermaid

MERMAID_ID = re.compile(r"\s*([A-Za-z0-9_]+)")


def mermaid_reserved(node: str) -> bool:
    return node in MERMAID_WORDS or node.startswith(MERMAID_STARTS)


def parse_mermaid(text: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """({node id: the first line of its label}, {(source, target)}) of the drawing."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    labels: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    for line in lines[1:]:
        if line.startswith(("    linkStyle ", "    classDef ", "    class ")):
            continue  # the drawing's own styling, after every node and link
        if line.startswith('    __start(("start")) --> '):
            edges.add(("__start", line.rsplit(" ", 1)[1]))
            continue
        found = MERMAID_ID.match(line)
        assert found, line
        rest = line[found.end() :]
        if rest.startswith(" "):  # a link: SOURCE ARROW|"label"| TARGET
            edges.add((found[1], line.rsplit(" ", 1)[1]))
        else:  # a node: ID SHAPE"label"SHAPE
            labels[found[1]] = rest.split('"')[1].split("<br/>")[0]
    return labels, edges


def test_mermaid_renames_nodes_whose_ids_are_keywords(keywords: Institution) -> None:
    out = draw(keywords, "mermaid")
    labels, edges = parse_mermaid(out)
    assert not [node for node in labels if mermaid_reserved(node)]
    assert not [edge for edge in edges if any(map(mermaid_reserved, edge))]
    # each node still shows its stage id, and the links join the same stages as before
    by_node = {node: label for node, label in labels.items() if not node.startswith("__")}
    assert sorted(by_node.values()) == sorted(s.id for s in keywords.stages)
    stage_of = {**by_node, "__start": "__start"}
    assert {(stage_of[a], stage_of[b]) for a, b in edges} == expected_edges(keywords)
    assert '    End(["end<br/>terminal: completed"])' in out
    assert '    Graph[/"graph<br/>lot: draws 2 of worker"/]' in out
    assert '    Graph -.-o|"chooses"| Subgraph' in out
    assert '    digraph -->|"done"| End' in out
    assert '    edge -->|"approve"| Style' in out and "Class_a" in out and "Flowchart_b" in out


# --------------------------------------------------------------------------- label text

DANGEROUS = 'say "no" | a\\b <b>#1</b> &amp;\nnext\rline'


def with_decision(word: str) -> Institution:
    """A draft stage that may return ``word``, its route drawn as an edge labelled with it
    (made without the static checks, which refuse such a word: drawing must not rely on
    them)."""
    data = yaml.safe_load(KEYWORDS)
    node = next(s for s in data["stages"] if s["id"] == "node")
    node["decisions"] = ["done", word]
    node["next"][word] = "strict"
    return Institution.model_validate(data)


def test_dot_labels_escape_what_would_end_them() -> None:
    institution = with_decision(DANGEROUS)
    out = draw(institution, "dot")
    parse_dot(out)  # every statement is still one line of well-formed tokens
    edge = next(e for e in stage_edges(institution) if e.decision == DANGEROUS)
    line = next(line for line in out.splitlines() if line.startswith('    "node" -> "strict"'))
    label = re.search(r'label=("(?:[^"\\]|\\.)*")', line)
    assert label
    # read back as Graphviz reads it: \n a line break, \X the character X
    read = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], label[1][1:-1])
    assert read == edge_text(edge, institution).replace("\r", "\n")


def test_mermaid_labels_escape_what_would_end_them() -> None:
    institution = with_decision(DANGEROUS)
    out = draw(institution, "mermaid")
    parse_mermaid(out)
    line = next(x for x in out.splitlines() if x.startswith("    node ") and x.endswith("| strict"))
    label = line[line.index('|"') + 1 : line.rindex('"|') + 1]
    assert label.startswith('"') and label.endswith('"') and '"' not in label[1:-1]
    assert not set(label[1:-1].replace("<br/>", "")) & set('"<>|\n\r')
    entities = {"#quot;": '"', "#lt;": "<", "#gt;": ">", "#amp;": "&", "#35;": "#", "#124;": "|"}
    read = re.sub("|".join(entities), lambda m: entities[m[0]], label[1:-1])
    assert read == DANGEROUS.replace("\n", "<br/>").replace("\r", "<br/>")


def test_free_text_does_not_reach_mermaid_or_dot(keywords: Institution) -> None:
    """Names, titles, purposes and histories are not drawn by `govern graph`, so no text in
    them can break its output."""
    data = yaml.safe_load(KEYWORDS)
    data["name"] = data["era"] = data["history"] = DANGEROUS
    for item in [*data["roles"], *data["stages"], *data["oversight"]]:
        for field in ("title", "instructions", "purpose"):
            if field in item:
                item[field] = DANGEROUS
    hostile = Institution.model_validate(data)
    for fmt in ("mermaid", "dot"):
        assert draw(hostile, fmt) == draw(keywords, fmt)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- SVG

EVERY_FORBIDDEN = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r") + "\ufffe\uffff"


def yaml_escaped(text: str) -> str:
    """``text`` as a YAML double-quoted scalar, every character escaped."""
    return '"' + "".join(f"\\u{ord(c):04x}" for c in text) + '"'


def test_svg_is_well_formed_whatever_the_free_text_holds(tmp_path: Path) -> None:
    name = f"<Senate> & {EVERY_FORBIDDEN} \"'end"
    text = KEYWORDS.replace("name: Keywords", f"name: {yaml_escaped(name)}")
    for field in (
        "era: now",
        "history: Every stage is named after a keyword of DOT or Mermaid.",
        "    purpose: Draft.",
        "    title: Clerk",
    ):
        key, value = field.split(": ", 1)
        text = text.replace(field, f"{key}: {yaml_escaped(value + EVERY_FORBIDDEN)}", 1)
    institution = checked_institution(load_checked(write(tmp_path, "hostile.yaml", text)))
    assert institution.name == name
    svg = draw_svg(institution, prefix="h")
    xml.dom.minidom.parseString(svg)
    root = ET.fromstring(svg)
    title = root.find("{http://www.w3.org/2000/svg}title")
    assert title is not None
    replaced = "\ufffd" * len(EVERY_FORBIDDEN)
    assert title.text == f"<Senate> & {replaced} \"'end (keywords)"


@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(codec=None, exclude_categories=("Cs",)), min_size=1, max_size=40))
def test_svg_title_holds_any_name(name: str) -> None:
    data = yaml.safe_load(KEYWORDS)
    data["name"] = name
    svg = draw_svg(Institution.model_validate(data), prefix="p")
    title = ET.fromstring(svg).find("{http://www.w3.org/2000/svg}title")
    assert title is not None and title.text is not None
    allowed = re.compile(r"[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
    kept = "".join(c if allowed.fullmatch(c) else "\ufffd" for c in name)
    # XML parsers read a carriage return as a line feed
    assert title.text == f"{kept} (keywords)".replace("\r\n", "\n").replace("\r", "\n")


# --------------------------------------------------------------------------- govern new


def govern_new(name: str, pattern: str) -> tuple[int, str, str]:
    """`govern new institution --pattern P -- NAME`, in this process: (status, out, err)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["new", "institution", "--pattern", pattern, "--", name])
    return status, out.getvalue(), err.getvalue()


AWKWARD_NAMES = [
    "Rome: the Senate",
    "#1 Council",
    "123",
    "[Senate]",
    "{Senate}",
    "- dash",
    "@at",
    "`tick",
    "yes",
    "No",
    "null",
    "true",
    "off",
    "~",
    "Rome\nSenate",
    "Senate # Rome",
    "  spaced  ",
    "'single'",
    '"double"',
    "back\\slash",
    "!!!",
    "!!python/object:os.system",
    "&anchor",
    "*alias",
    "%directive",
    "|",
    ">",
    "?",
    "---",
    "...",
    "tab\there",
    "bidi \u202e and bom \ufeff and nel \x85 and line \u2028",
    "Athénée",
    "Σύγκλητος",
    "x" * 300,
]


def check_scaffold(name: str, pattern: str, folder: Path) -> None:
    status, out, err = govern_new(name, pattern)
    if status == 2:
        assert err.startswith("govern: error: ") and "Traceback" not in err
        return
    assert status == 0, err
    path = write(folder, "new.yaml", out)
    try:
        institution = checked_institution(load_checked(path))
    except SpecInvalid as exc:
        pytest.fail(f"{name!r} gave an invalid file: {exc.errors}\n{out}")
    assert institution.name == name
    assert re.fullmatch(r"[a-z][a-z0-9_]*", institution.id) and len(institution.id) <= 64
    # the header's comment lines are still comments: the first key is id:
    assert next(line for line in out.splitlines() if not line.startswith("#")).startswith("id: ")


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_new_writes_any_name_so_that_it_loads_back(name: str, tmp_path: Path) -> None:
    check_scaffold(name, "consensus", tmp_path)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=1, max_size=60), pattern=st.sampled_from(PATTERNS))
def test_new_institution_property(name: str, pattern: str, tmp_path: Path) -> None:
    check_scaffold(name, pattern, tmp_path)


def test_new_comments_hold_a_file_name_with_a_line_break(tmp_path: Path) -> None:
    """The header names the file to validate: a line break in its name must not end the
    comment line."""
    write(tmp_path, "pyproject.toml", "")
    write(tmp_path / "schemas", "govern.schema.json", "{}")
    out = tmp_path / "in\nstitutions" / "new\nfile.yaml"
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["new", "institution", "Rome", "--pattern", "pipeline", "--out", str(out)]) == 0
    assert checked_institution(load_checked(out)).name == "Rome"
    lines = out.read_text().splitlines()
    assert lines[0] == "# yaml-language-server: $schema=../schemas/govern.schema.json"
    assert lines[2] == "#   govern validate " + shlex.quote(str(out)).replace("\n", "\ufffd")


def test_new_refuses_an_empty_name() -> None:
    status, out, err = govern_new("", "pipeline")
    assert status == 2 and out == ""
    assert err == (
        "govern: error: NAME: the name is empty; give the institution a name, e.g. 'Roman Senate'\n"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Roman Senate", "roman_senate"),
        ("123", "institution_123"),
        ("!!!", "institution"),
        ("Σύγκλητος", "institution"),
        ("Athénée", "athenee"),
        ("_x_", "x"),
        ("a" * 70, "a" * 64),
        ("1" + "b" * 50 + " c", "institution_1" + "b" * 50),  # no trailing _ when cut
    ],
)
def test_institution_id_always_matches_the_pattern(name: str, expected: str) -> None:
    assert institution_id(name) == expected


@given(st.text(st.characters(codec=None, exclude_categories=())))
def test_yaml_string_loads_back_exactly(text: str) -> None:
    # a lone surrogate cannot be YAML text: it loads back as the text of its escape
    shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
    assert parse_yaml(f"name: {yaml_string(text)}\n", "t.yaml").data == {"name": shown}
    assert "\n" not in yaml_string(text)
