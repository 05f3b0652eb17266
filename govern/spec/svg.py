"""Draw an institution's topology as a self-contained SVG, with no script and no font.

Mermaid needs JavaScript to lay a graph out, so a report that must open with no network and
no script draws its own: a layered layout, computed in Python, the same every time.

- Layers: loops are broken at the edges that return to a stage still being explored by a
  depth-first walk from the entry (in the order stages are written); each stage's layer is
  its longest distance from the entry along the remaining edges.
- Order within a layer: stages in the order written, then two sweeps that move each stage
  towards the mean position of its predecessors (a stable sort, so ties keep their order).
- Forward edges are straight; edges that go back up (send-backs, retries) curve round the
  right-hand side. Decisions label the edges, ``≤N`` shows a bound, and exhausted and
  unparsable routes are dashed, as in `govern graph`.
- An overseer's interventions curve round the right-hand side too, red and dotted, and a
  note at the top says what it watches; a body chosen by an earlier stage is joined to its
  chooser by a grey dotted "chooses" curve round the left-hand side, outside the layout.

Every text comes from the institution's YAML and goes through one escaping function, which
also replaces with U+FFFD each character XML 1.0 does not allow at all (most C0 controls,
U+FFFE, U+FFFF, lone surrogates), so the drawing is well-formed XML whatever the YAML held;
ids inside the SVG carry a caller's prefix so that several drawings can sit in one HTML page.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from html import escape
from typing import Literal

from govern.spec.draw import (
    CHOOSES_COLOUR,
    OVERSIGHT_COLOUR,
    EdgeStyle,
    chooses_links,
    edge_style,
    edge_text,
    oversight_notes,
    stage_lines,
)
from govern.spec.graph import stage_edges
from govern.spec.models import Institution

CHAR_WIDTH = 6.6  # px per character at FONT_SIZE in a generic sans-serif, generously
FONT_SIZE = 12
SMALL = 10
NODE_HEIGHT = 40
LAYER_GAP = 64
NODE_GAP = 28
MARGIN = 24
MAX_LABEL = 48
LINE_HEIGHT = 13  # each detail line past the first makes a node this much taller
NOTE_HEIGHT = 16  # an overseer's note, one line at the top

FILLS = {
    "review": "#fff4e0",
    "vote": "#fde8ef",
    "cluster": "#e8f6ee",
    "nominate": "#f3ecfa",
    "lot": "#fdf6d8",
    "office": "#e6f4f7",
    "decompose": "#eaf0e0",
    "terminal": "#eeeeee",
}
STAGE_FILL = "#eef3fb"
# Characters XML 1.0 does not allow, not even as character references.
_NOT_XML = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """Text for an SVG element or attribute: escaped, and every character XML 1.0 forbids
    replaced with U+FFFD."""
    return escape(_NOT_XML.sub("\ufffd", text))


@dataclass
class _Node:
    id: str
    kind: str
    title: str
    details: list[str]
    width: float
    layer: int = 0
    x: float = 0.0  # centre
    y: float = 0.0  # top

    @property
    def height(self) -> float:
        return NODE_HEIGHT + LINE_HEIGHT * max(len(self.details) - 1, 0)


@dataclass(frozen=True)
class _Link:
    source: str
    target: str
    label: str
    style: EdgeStyle | Literal["chooses"]
    back: bool

    @property
    def side(self) -> bool:
        """Drawn as a curve round the right-hand side, not along the layers."""
        return self.back or self.source == self.target or self.style == "oversight"


def _short(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text_width(text: str, size: float = FONT_SIZE) -> float:
    return len(text) * CHAR_WIDTH * size / FONT_SIZE


def _nodes(institution: Institution) -> dict[str, _Node]:
    nodes: dict[str, _Node] = {}
    for stage in institution.stages:
        if stage.id in nodes:
            continue
        details = [_short(line) for line in stage_lines(institution, stage)]
        title = _short(stage.id)
        width = max(_text_width(title) + 8, *(_text_width(d, SMALL) for d in details)) + 32
        nodes[stage.id] = _Node(stage.id, stage.kind, title, details, width)
    return nodes


def _links(institution: Institution, order: dict[str, int]) -> list[_Link]:
    """One link per (source, target), its decisions joined (an overseer's apart); back links
    found by a DFS."""
    grouped: dict[tuple[str, str, bool], list[tuple[str, EdgeStyle]]] = defaultdict(list)
    for edge in stage_edges(institution):
        style = edge_style(edge)
        key = (edge.source, edge.target, style == "oversight")
        grouped[key].append((edge_text(edge, institution), style))
    successors: dict[str, list[str]] = defaultdict(list)
    for source, target, _ in grouped:
        if target not in successors[source]:
            successors[source].append(target)
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    starts = [institution.entry, *sorted(order, key=order.__getitem__)]
    for start in starts:
        if start not in order or start in state:
            continue
        stack = [(start, iter(successors[start]))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(successors[child])))
    return [
        _Link(
            source,
            target,
            _short(", ".join(dict.fromkeys(text for text, _ in labels)), 40),
            _group_style([style for _, style in labels]),
            (source, target) in back,
        )
        for (source, target, _), labels in grouped.items()
    ]


def _group_style(styles: list[EdgeStyle]) -> EdgeStyle:
    """One link's style for the edges it stands for: dashed only when all are."""
    if "oversight" in styles:
        return "oversight"
    if all(style == "dashed" for style in styles):
        return "dashed"
    return "vetoed" if "vetoed" in styles else "route"


def _layers(nodes: dict[str, _Node], links: list[_Link], order: dict[str, int]) -> None:
    """Longest distance from the entry over the forward links (Kahn's order, stable)."""
    forward = [link for link in links if not link.back]
    incoming: dict[str, int] = dict.fromkeys(nodes, 0)
    outgoing: dict[str, list[str]] = defaultdict(list)
    for link in forward:
        incoming[link.target] += 1
        outgoing[link.source].append(link.target)
    ready = sorted((n for n, k in incoming.items() if k == 0), key=order.__getitem__)
    while ready:
        node = ready.pop(0)
        for target in outgoing[node]:
            nodes[target].layer = max(nodes[target].layer, nodes[node].layer + 1)
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
                ready.sort(key=order.__getitem__)


def _chains(nodes: dict[str, _Node], links: list[_Link]) -> dict[_Link, list[str]]:
    """Each forward link as the chain of slots it passes: a link that spans several layers
    gets a dummy slot in each layer between, so the layout keeps its path clear of stages
    (the label reserves room in the first dummy)."""
    chains: dict[_Link, list[str]] = {}
    for number, link in enumerate(links):
        if link.side:
            continue
        source, target = nodes[link.source], nodes[link.target]
        chain = [link.source]
        for layer in range(source.layer + 1, target.layer):
            name = f"\x00{number}.{layer}"  # no stage id holds a NUL
            first = layer == source.layer + 1
            width = _text_width(link.label, SMALL) + 10 if first else 12.0
            nodes[name] = _Node(name, "dummy", "", "", width, layer)
            chain.append(name)
        chains[link] = [*chain, link.target]
    return chains


def _positions(
    nodes: dict[str, _Node], chains: dict[_Link, list[str]], order: dict[str, int]
) -> float:
    """Place every slot; returns the drawing's inner width."""
    rank = {name: order.get(name, len(order) + i) for i, name in enumerate(nodes)}
    layers: dict[int, list[str]] = defaultdict(list)
    for node in sorted(nodes.values(), key=lambda n: rank[n.id]):
        layers[node.layer].append(node.id)
    predecessors: dict[str, list[str]] = defaultdict(list)
    for chain in chains.values():
        for before, after in itertools.pairwise(chain):
            predecessors[after].append(before)
    for _ in range(3):
        for layer in sorted(layers)[1:]:
            place = {n: i for lay in layers.values() for i, n in enumerate(lay)}
            mean = {
                n: (
                    sum(place[p] for p in predecessors[n]) / len(predecessors[n])
                    if predecessors[n]
                    else place[n]
                )
                for n in layers[layer]
            }
            layers[layer].sort(key=mean.__getitem__)
    widths = {
        layer: sum(nodes[n].width for n in members) + NODE_GAP * (len(members) - 1)
        for layer, members in layers.items()
    }
    inner = max(widths.values(), default=0.0)
    for layer, members in layers.items():
        x = (inner - widths[layer]) / 2
        for name in members:
            node = nodes[name]
            node.x = x + node.width / 2
            node.y = layer * (NODE_HEIGHT + LAYER_GAP)
            x += node.width + NODE_GAP
    return inner


def _shape(node: _Node, dx: float, dy: float) -> str:
    left, top = node.x - node.width / 2 + dx, node.y + dy
    right, bottom, middle = left + node.width, top + node.height, top + node.height / 2
    fill = FILLS.get(node.kind, STAGE_FILL)
    style = f'fill="{fill}" stroke="#445" stroke-width="1.2"'
    if node.kind in ("lot", "nominate"):
        slant = 12
        if node.kind == "lot":  # a parallelogram
            corners = [(left + slant, top), (right, top), (right - slant, bottom), (left, bottom)]
        else:  # a trapezium, wider at the foot
            corners = [(left + slant, top), (right - slant, top), (right, bottom), (left, bottom)]
        points = " ".join(f"{x},{y}" for x, y in corners)
        return f'<polygon points="{points}" {style}/>'
    if node.kind == "office":  # a cylinder: the holders kept across items
        rim = 5
        body = (
            f"M{left},{top + rim} L{left},{bottom - rim} "
            f"A{node.width / 2},{rim} 0 0 0 {right},{bottom - rim} L{right},{top + rim}"
        )
        lid = (
            f'<ellipse cx="{(left + right) / 2}" cy="{top + rim}" rx="{node.width / 2}" '
            f'ry="{rim}" {style}/>'
        )
        return f'<path d="{body}" {style}/>' + lid
    if node.kind in ("review", "vote"):
        cut = 14
        points = (
            f"{left},{middle} {left + cut},{top} {right - cut},{top} {right},{middle} "
            f"{right - cut},{bottom} {left + cut},{bottom}"
        )
        shape = f'<polygon points="{points}" {style}/>'
        if node.kind == "vote":
            inner = (
                f"{left + 4},{middle} {left + cut + 2},{top + 4} {right - cut - 2},{top + 4} "
                f"{right - 4},{middle} {right - cut - 2},{bottom - 4} {left + cut + 2},{bottom - 4}"
            )
            shape += f'<polygon points="{inner}" fill="none" stroke="#445" stroke-width="0.8"/>'
        return shape
    if node.kind == "cluster":
        size = f'width="{node.width}" height="{node.height}" {style}'
        back = f'<rect x="{left + 4}" y="{top - 4}" {size}/>'
        return back + f'<rect x="{left}" y="{top}" {size}/>'
    radius = NODE_HEIGHT / 2 if node.kind == "terminal" else 6
    return (
        f'<rect x="{left}" y="{top}" width="{node.width}" height="{node.height}" '
        f'rx="{radius}" {style}/>'
    )


_STROKES = {
    "route": ("#556", "1.1", ""),
    "dashed": ("#556", "1.1", ' stroke-dasharray="5,4"'),
    "vetoed": ("#556", "2.4", ""),
    "oversight": (OVERSIGHT_COLOUR, "1.3", ' stroke-dasharray="2,3"'),
    "chooses": (CHOOSES_COLOUR, "1.1", ' stroke-dasharray="1,3"'),
}


def _stroke(link: _Link, arrow: str) -> str:
    colour, width, dash = _STROKES[link.style]
    return f'fill="none" stroke="{colour}" stroke-width="{width}"{dash} marker-end="url(#{arrow})"'


def _label(x: float, y: float, text: str, colour: str = "#333") -> str:
    width = _text_width(text, SMALL) + 6
    return (
        f'<rect x="{x - width / 2:.1f}" y="{y - 8:.1f}" width="{width:.1f}" height="14" '
        f'fill="#ffffff" fill-opacity="0.9"/>'
        f'<text x="{x:.1f}" y="{y + 3:.1f}" font-size="{SMALL}" text-anchor="middle" '
        f'fill="{colour}">{_xml(text)}</text>'
    )


def _link_colour(link: _Link) -> str:
    return OVERSIGHT_COLOUR if link.style == "oversight" else "#333"


def draw_svg(institution: Institution, prefix: str = "g") -> str:
    """The institution's topology as an SVG document (ids start with ``prefix``)."""
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", prefix) or "g"
    order = {}
    for index, stage in enumerate(institution.stages):
        order.setdefault(stage.id, index)
    nodes = _nodes(institution)
    links = _links(institution, order)
    _layers(nodes, links, order)
    chains = _chains(nodes, links)
    inner = _positions(nodes, chains, order)
    side_links = sorted((k for k in links if k.side), key=lambda k: order[k.source])
    chosen = [
        _Link(chooser, stage_id, "chooses", "chooses", False)
        for chooser, stage_id in chooses_links(institution)
    ]
    notes = [" · ".join(text) for _, text in oversight_notes(institution)]
    left = 40 + 14 * len(chosen) if chosen else 0
    dx, dy = MARGIN + left, MARGIN + 28 + NOTE_HEIGHT * len(notes)
    width = max(
        [
            inner + 2 * MARGIN + left + (40 + 14 * len(side_links) if side_links else 0),
            *(_text_width(note, SMALL) + 2 * MARGIN for note in notes),
        ]
    )
    height = (
        dy
        + (max((n.layer for n in nodes.values()), default=0) + 1) * (NODE_HEIGHT + LAYER_GAP)
        + MARGIN
    )
    arrow = f"{prefix}-arrow"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" font-family="sans-serif" role="img" '
        f'aria-label="{_xml(f"topology of {institution.id}")}">',
        f"<title>{_xml(f'{institution.name} ({institution.id})')}</title>",
        f'<defs><marker id="{arrow}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#445"/></marker></defs>',
    ]
    entry = nodes.get(institution.entry)
    if entry is not None:
        ex, ey = entry.x + dx, entry.y + dy
        parts.append(f'<circle cx="{ex:.1f}" cy="{ey - 22:.1f}" r="5" fill="#445"/>')
        parts.append(
            f'<line x1="{ex:.1f}" y1="{ey - 17:.1f}" x2="{ex:.1f}" y2="{ey:.1f}" stroke="#445" '
            f'marker-end="url(#{arrow})"/>'
        )
    for index, note in enumerate(notes):
        parts.append(
            f'<text x="{MARGIN}" y="{MARGIN + NOTE_HEIGHT * index + 10}" font-size="{SMALL}" '
            f'fill="{OVERSIGHT_COLOUR}">{_xml(note)}</text>'
        )
    labels = []
    side = inner + dx
    for index, link in enumerate(side_links):
        source, target = nodes[link.source], nodes[link.target]
        bulge = side + 24 + 14 * index
        x1, y1 = source.x + source.width / 2 + dx, source.y + dy + NODE_HEIGHT / 2
        x2, y2 = target.x + target.width / 2 + dx, target.y + dy + NODE_HEIGHT / 2 - 6
        parts.append(
            f'<path d="M{x1:.1f},{y1:.1f} C{bulge:.1f},{y1:.1f} {bulge:.1f},{y2:.1f} '
            f'{x2:.1f},{y2:.1f}" {_stroke(link, arrow)}/>'
        )
        labels.append(_label(bulge - 6, (y1 + y2) / 2, link.label, _link_colour(link)))
    for index, link in enumerate(chosen):
        source, target = nodes[link.source], nodes[link.target]
        bulge = dx - 24 - 14 * index
        x1, y1 = source.x - source.width / 2 + dx, source.y + dy + NODE_HEIGHT / 2
        x2, y2 = target.x - target.width / 2 + dx, target.y + dy + NODE_HEIGHT / 2 + 6
        parts.append(
            f'<path d="M{x1:.1f},{y1:.1f} C{bulge:.1f},{y1:.1f} {bulge:.1f},{y2:.1f} '
            f'{x2:.1f},{y2:.1f}" {_stroke(link, arrow)}/>'
        )
        labels.append(_label(bulge + 6, (y1 + y2) / 2, link.label, CHOOSES_COLOUR))
    for link, chain in chains.items():
        points = []
        for position, name in enumerate(chain):
            node = nodes[name]
            if node.kind == "dummy":
                points.append((node.x + dx, node.y + dy + NODE_HEIGHT / 2))
            elif position == 0:
                points.append((node.x + dx, node.y + dy + node.height))
            else:
                points.append((node.x + dx, node.y + dy))
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points)
        )
        parts.append(f'<path d="{path}" {_stroke(link, arrow)}/>')
        if len(chain) > 2:
            labels.append(_label(points[1][0], points[1][1], link.label))
        else:
            (x1, y1), (x2, y2) = points
            labels.append(_label((x1 + x2) / 2, (y1 + y2) / 2, link.label))
    for node in sorted((n for n in nodes.values() if n.kind != "dummy"), key=lambda n: order[n.id]):
        x, y = node.x + dx, node.y + dy
        parts.append(_shape(node, dx, dy))
        parts.append(
            f'<text x="{x:.1f}" y="{y + 17:.1f}" font-size="{FONT_SIZE}" font-weight="bold" '
            f'text-anchor="middle" fill="#111">{_xml(node.title)}</text>'
        )
        for line, detail in enumerate(node.details):
            parts.append(
                f'<text x="{x:.1f}" y="{y + 31 + LINE_HEIGHT * line:.1f}" font-size="{SMALL}" '
                f'text-anchor="middle" fill="#333">{_xml(detail)}</text>'
            )
    parts += labels
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
