"""Draw an institution's topology as Mermaid or Graphviz DOT text.

Stage kinds have their own shapes; decisions label the edges; bounds show as
``≤N``; exhausted and unparsable routes are dashed. The second edition's constructs
show where they appear, and only there, so older drawings stay as they were: a lot, a
nomination and an office have shapes of their own; a body an earlier stage chose names
that stage, and a dotted "chooses" link joins the two; a choice vote shows its rule and
slate, a motion its veto and abstention; a stage that fills an office says so, and an
office is marked where it acts; a review's own words show their meaning; an overseer is
a note of what it watches, its interventions are red dotted edges, and veto routes are bold.

A stage id is written as it is, unless the format would read it as a keyword: DOT quotes
``node``, ``edge``, ``graph``, ``digraph``, ``subgraph`` and ``strict``; Mermaid's flowchart
lexer reads ``end`` (and ``click``, ``call``, ``href``) as keywords, and ``style``,
``class``, ``graph``, ``flowchart``, ``subgraph``, ``interpolate`` even as the start of a
longer word, so such a node is named with its first letter in upper case (``End``), which
no spec id has, and labelled with the stage id. Label text is escaped for each format.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Literal

from govern.spec.graph import Edge, stage_edges
from govern.spec.models import (
    HELD,
    UNPARSABLE,
    VACANT,
    VETOED,
    ChosenBy,
    Institution,
    LotStage,
    OfficeStage,
    Oversight,
    VoteStage,
)

DrawFormat = Literal["mermaid", "dot"]
EdgeStyle = Literal["route", "dashed", "vetoed", "oversight"]
OVERSIGHT_COLOUR = "#c0392b"
CHOOSES_COLOUR = "#7f8c8d"

_MERMAID_SHAPES = {
    "review": ("{", "}"),
    "vote": ("{{", "}}"),
    "cluster": ("[[", "]]"),
    "nominate": ("[/", "\\]"),
    "lot": ("[/", "/]"),
    "office": ("[(", ")]"),
    "decompose": ("[[", "]]"),
    "terminal": ("([", "])"),
}
_MERMAID_ARROWS: dict[EdgeStyle, str] = {
    "route": "-->",
    "dashed": "-.->",
    "vetoed": "==>",
    "oversight": "-.->",
}
_DOT_SHAPES = {
    "review": "diamond",
    "vote": "hexagon",
    "cluster": "box3d",
    "nominate": "trapezium",
    "lot": "parallelogram",
    "office": "cylinder",
    "decompose": "box3d",
    "terminal": "doublecircle",
}
_DOT_STYLES: dict[EdgeStyle, str] = {
    "route": "",
    "dashed": ", style=dashed",
    "vetoed": ", style=bold",
    "oversight": f', style=dotted, color="{OVERSIGHT_COLOUR}", fontcolor="{OVERSIGHT_COLOUR}"',
}


_DOT_KEYWORDS = frozenset({"node", "edge", "graph", "digraph", "subgraph", "strict"})
_DOT_BARE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MERMAID_KEYWORDS = frozenset({"end", "call", "click", "href", "direction"})
_MERMAID_KEYWORD_STARTS = ("style", "class", "graph", "flowchart", "subgraph", "interpolate")
_MERMAID_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "&": "#amp;",
    "<": "#lt;",
    ">": "#gt;",
    "|": "#124;",
}
_MERMAID_ESCAPED = re.compile(r'[#"&<>|]')


def draw(institution: Institution, fmt: DrawFormat = "mermaid") -> str:
    return _mermaid(institution) if fmt == "mermaid" else _dot(institution)


def _dot_text(lines: list[str]) -> str:
    """A DOT quoted string of the lines: quotes and backslashes escaped, lines broken by
    ``\\n``, so no text can end the string or make an escape of its own."""
    parts = [
        part.replace("\\", "\\\\").replace('"', '\\"')
        for line in lines
        for part in line.splitlines() or [""]
    ]
    return '"' + "\\n".join(parts) + '"'


def _dot_id(node: str) -> str:
    """A node id as DOT reads it: bare when it is a plain name and no keyword, else quoted."""
    bare = _DOT_BARE_ID.fullmatch(node) and node.lower() not in _DOT_KEYWORDS
    return node if bare else _dot_text([node])


def _mermaid_text(lines: list[str]) -> str:
    """A Mermaid quoted label of the lines: the characters Mermaid or HTML would read written
    as Mermaid's entity codes (``#quot;``), lines joined by ``<br/>``."""
    parts = [
        _MERMAID_ESCAPED.sub(lambda found: _MERMAID_ENTITIES[found[0]], part)
        for line in lines
        for part in line.splitlines() or [""]
    ]
    return '"' + "<br/>".join(parts) + '"'


def _mermaid_id(node: str) -> str:
    """A node id Mermaid's lexer does not read as a keyword (see the module's docstring)."""
    if node in _MERMAID_KEYWORDS or node.startswith(_MERMAID_KEYWORD_STARTS):
        return node[0].upper() + node[1:]
    return node


def _role_text(institution: Institution, role_id: str) -> str:
    """A role as it acts: an office says so, with its term."""
    role = next((r for r in institution.roles if r.id == role_id), None)
    if role is None or role.office is None:
        return role_id
    term = "for the run" if role.office.term == "run" else f"term {role.office.term}"
    return f"{role_id} (office, {term})"


def _chosen_bodies(stage: Any) -> list[tuple[str, str]]:
    """(field, chooser) for each body of the stage that an earlier stage chose."""
    return [
        (field, value.chosen_by)
        for field in type(stage).model_fields
        if isinstance(value := getattr(stage, field), ChosenBy)
    ]


def _share(value: float | str) -> str:
    """A share as written: 1 rather than 1.0, 1/5 as 1/5."""
    return str(value) if isinstance(value, str) else str(Fraction(str(value)).limit_denominator())


def stage_lines(institution: Institution, stage: Any) -> list[str]:
    """What a stage's node says under its id: its kind and who acts, then (only for the
    constructs that need it) how it chooses, vetoes or fills an office."""
    if stage.kind == "terminal":
        return [f"terminal: {stage.outcome}"]
    if isinstance(stage, OfficeStage):
        return [f"office {stage.office}: {HELD}/{VACANT}"]
    if isinstance(stage, LotStage):
        pool = (
            f"the seats chosen by {stage.pool.chosen_by}"
            if isinstance(stage.pool, ChosenBy)
            else ", ".join(_role_text(institution, r) for r in dict.fromkeys(stage.pool))
        )
        first = f"lot: draws {stage.draw} of {pool}"
    else:
        who = [f"{field}: chosen by {chooser}" for field, chooser in _chosen_bodies(stage)]
        who += [_role_text(institution, r) for r in dict.fromkeys(stage.actors)]
        first = stage.kind + (f" · {', '.join(who)}" if who else "")
    more: list[str] = []
    if isinstance(stage, VoteStage):
        if stage.choice:
            chooses = f", choose {stage.choose}" if stage.choose != 1 else ""
            more.append(f"{stage.rule} of slate {stage.slate}{chooses}")
        if stage.veto_by:
            more.append(f"veto by {', '.join(stage.veto_by)}")
        if stage.min_yes is not None:
            more.append(f"at least {stage.min_yes} {'votes' if stage.choice else 'yes'}")
        if stage.abstain:
            more.append("may abstain")
    if getattr(stage, "fills", None):
        more.append(f"fills {stage.fills}")
    return [first, " · ".join(more)] if more else [first]


def _node_lines(institution: Institution, stage_id: str) -> list[str]:
    return [stage_id, *stage_lines(institution, institution.stage(stage_id))]


def _overseer(institution: Institution, edge: Edge) -> Oversight | None:
    """The oversight whose intervention an edge is, if it is one."""
    return institution.oversight[edge.path[1]] if edge.path[0] == "oversight" else None


def edge_text(edge: Edge, institution: Institution) -> str:
    overseer = _overseer(institution, edge)
    if overseer is not None:
        text = f"{overseer.role}: {edge.decision}"
        return text if edge.via == "oversight" else f"{text}: exhausted"
    if edge.via == "route":
        stage = institution.stage(edge.source)
        route = stage.next[edge.decision]
        bound = f" ≤{route.max_visits}" if route.max_visits else ""
        meaning = getattr(stage, "means", {}).get(edge.decision)
        return f"{edge.decision}{f' ({meaning})' if meaning else ''}{bound}"
    return f"{edge.decision}: exhausted"


def edge_style(edge: Edge) -> EdgeStyle:
    if edge.path[0] == "oversight":
        return "oversight"
    if edge.via != "route" or edge.decision == UNPARSABLE:
        return "dashed"
    return "vetoed" if edge.decision == VETOED else "route"


def chooses_links(institution: Institution) -> list[tuple[str, str]]:
    """(chooser, stage) for every body an earlier stage chose: the seats flow that way."""
    ids = {s.id for s in institution.stages}
    return list(
        dict.fromkeys(
            (chooser, stage.id)
            for stage in institution.stages
            for _, chooser in _chosen_bodies(stage)
            if chooser in ids
        )
    )


def oversight_notes(institution: Institution) -> list[tuple[str, list[str]]]:
    """(node id, lines) of a note for each overseer: who, what it watches, how often."""
    notes = []
    for index, oversight in enumerate(institution.oversight):
        watched = (
            "every stage that asks a model"
            if oversight.watches == "all"
            else ", ".join(oversight.watches)
        )
        most = oversight.max_interventions
        notes.append(
            (
                f"__oversight_{index}",
                [
                    f"oversight: {_role_text(institution, oversight.role)}",
                    f"watches {watched}",
                    f"rate {_share(oversight.rate)} · at most {most} "
                    f"intervention{'s' if most != 1 else ''} per item",
                ],
            )
        )
    return notes


def _mermaid(institution: Institution) -> str:
    lines = ["flowchart TD"]
    node = _mermaid_id
    for stage in institution.stages:
        left, right = _MERMAID_SHAPES.get(stage.kind, ("[", "]"))
        text = _mermaid_text(_node_lines(institution, stage.id))
        lines.append(f"    {node(stage.id)}{left}{text}{right}")
    notes = oversight_notes(institution)
    for note, text in notes:
        lines.append(f"    {note}>{_mermaid_text(text)}]")
    lines.append(f'    __start(("start")) --> {node(institution.entry)}')
    red: list[str] = []  # link numbers, counted from the start link (0), for linkStyle
    for number, edge in enumerate(stage_edges(institution), start=1):
        style = edge_style(edge)
        if style == "oversight":
            red.append(str(number))
        arrow = _MERMAID_ARROWS[style]
        label = _mermaid_text([edge_text(edge, institution)])
        lines.append(f"    {node(edge.source)} {arrow}|{label}| {node(edge.target)}")
    for chooser, stage_id in chooses_links(institution):
        lines.append(f'    {node(chooser)} -.-o|"chooses"| {node(stage_id)}')
    if red:
        lines.append(
            f"    linkStyle {','.join(red)} stroke:{OVERSIGHT_COLOUR},color:{OVERSIGHT_COLOUR}"
        )
    if notes:
        lines.append(f"    classDef oversight fill:#fdecea,stroke:{OVERSIGHT_COLOUR}")
        lines.append(f"    class {','.join(note for note, _ in notes)} oversight")
    return "\n".join(lines) + "\n"


def _dot(institution: Institution) -> str:
    lines = [
        f'digraph "{institution.id}" {{',
        "    rankdir=TB;",
        '    node [fontname="Helvetica", shape=box, style=rounded];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    __start [shape=point, label=""];',
        f"    __start -> {_dot_id(institution.entry)};",
    ]
    node = _dot_id
    for stage in institution.stages:
        shape = _DOT_SHAPES.get(stage.kind, "box")
        label = _dot_text(_node_lines(institution, stage.id))
        lines.append(f"    {node(stage.id)} [shape={shape}, label={label}];")
    for note, text in oversight_notes(institution):
        lines.append(
            f'    {note} [shape=note, style=solid, color="{OVERSIGHT_COLOUR}", '
            f'fontcolor="{OVERSIGHT_COLOUR}", label={_dot_text(text)}];'
        )
    for edge in stage_edges(institution):
        style = _DOT_STYLES[edge_style(edge)]
        label = _dot_text([edge_text(edge, institution)])
        lines.append(f"    {node(edge.source)} -> {node(edge.target)} [label={label}{style}];")
    for chooser, stage_id in chooses_links(institution):
        lines.append(
            f'    {node(chooser)} -> {node(stage_id)} [label="chooses", style=dotted, '
            "arrowhead=odot, "
            f'color="{CHOOSES_COLOUR}", fontcolor="{CHOOSES_COLOUR}", constraint=false];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
