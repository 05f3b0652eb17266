"""Draw an institution's topology as Mermaid or Graphviz DOT text.

Stage kinds have their own shapes; decisions label the edges; bounds show as
``≤N``; exhausted and unparsable routes are dashed.
"""

from __future__ import annotations

from typing import Literal

from govern.spec.graph import Edge, stage_edges
from govern.spec.models import UNPARSABLE, Institution

DrawFormat = Literal["mermaid", "dot"]

_MERMAID_SHAPES = {
    "review": ("{", "}"),
    "vote": ("{{", "}}"),
    "cluster": ("[[", "]]"),
    "terminal": ("([", "])"),
}
_DOT_SHAPES = {
    "review": "diamond",
    "vote": "hexagon",
    "cluster": "box3d",
    "terminal": "doublecircle",
}


def draw(institution: Institution, fmt: DrawFormat = "mermaid") -> str:
    return _mermaid(institution) if fmt == "mermaid" else _dot(institution)


def _node_text(institution: Institution, stage_id: str) -> str:
    stage = institution.stage(stage_id)
    actors = ", ".join(dict.fromkeys(stage.actors))
    detail = stage.kind if stage.kind != "terminal" else f"terminal: {stage.outcome}"
    return f"{stage_id}\\n{detail}" + (f" · {actors}" if actors else "")


def _edge_text(edge: Edge, institution: Institution) -> str:
    if edge.via == "route":
        route = institution.stage(edge.source).next[edge.decision]
        bound = f" ≤{route.max_visits}" if route.max_visits else ""
        return f"{edge.decision}{bound}"
    return f"{edge.decision}: exhausted"


def _dashed(edge: Edge) -> bool:
    return edge.via != "route" or edge.decision == UNPARSABLE


def _mermaid(institution: Institution) -> str:
    lines = ["flowchart TD"]
    for stage in institution.stages:
        left, right = _MERMAID_SHAPES.get(stage.kind, ("[", "]"))
        text = _node_text(institution, stage.id).replace("\\n", "<br/>")
        lines.append(f'    {stage.id}{left}"{text}"{right}')
    lines.append(f'    __start(("start")) --> {institution.entry}')
    for edge in stage_edges(institution):
        arrow = "-.->" if _dashed(edge) else "-->"
        lines.append(f'    {edge.source} {arrow}|"{_edge_text(edge, institution)}"| {edge.target}')
    return "\n".join(lines) + "\n"


def _dot(institution: Institution) -> str:
    lines = [
        f'digraph "{institution.id}" {{',
        "    rankdir=TB;",
        '    node [fontname="Helvetica", shape=box, style=rounded];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    __start [shape=point, label=""];',
        f"    __start -> {institution.entry};",
    ]
    for stage in institution.stages:
        shape = _DOT_SHAPES.get(stage.kind, "box")
        lines.append(
            f'    {stage.id} [shape={shape}, label="{_node_text(institution, stage.id)}"];'
        )
    for edge in stage_edges(institution):
        style = ", style=dashed" if _dashed(edge) else ""
        lines.append(
            f'    {edge.source} -> {edge.target} [label="{_edge_text(edge, institution)}"{style}];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
