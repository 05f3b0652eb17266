"""`govern report`: one self-contained HTML page, the tables as Markdown, the charts as files.

The page needs no network and no script: charts are SVG in ``data:`` URIs, topologies are
inline SVG drawn by `govern.spec.svg`, styles are inline, fonts are the viewer's generic
sans-serif, and a Content-Security-Policy forbids the page any other load. Every string
that comes from the results (cell ids, institution names from the user's YAML, commands,
paths) is HTML-escaped, so hostile text such as ``<script>`` shows as text.

Every chart and table row links to the ledger heads of the cells it came from, listed with
each cell's folder: `govern audit` on that folder verifies the head shown.

Cells that played Cournot markets get the market section (`govern.experiments.markets`)
instead of the accuracy comparison, whose right and wrong mean nothing for a market; an
experiment of markets alone has no accuracy sections at all.

The output is deterministic: the same results give the same bytes (no time of writing).
"""

from __future__ import annotations

import base64
import os
import platform
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from govern import __version__
from govern.experiments.compare import Comparison, footer, render_markdown, table_rows
from govern.experiments.figures import Chart, accuracy_chart, cost_chart
from govern.experiments.markets import (
    Configuration,
    MarketReport,
    Paper,
    collusion_rows,
    comparison_rows,
    configuration_title,
    paper_caption,
    paper_effect_rows,
    paper_rows,
    welfare_rows,
)
from govern.experiments.markets import footer as market_footer
from govern.experiments.markets import render_markdown as market_markdown
from govern.experiments.results import JSON_LIMIT, CellResult, ResultsError, ResultSet
from govern.files import NotRegularFile, parse_json, read_regular, write_atomic

STYLE = """
body{font-family:sans-serif;margin:0 auto;max-width:1280px;padding:0 24px 48px;color:#1b1b1b;
line-height:1.45}
h1{margin-top:24px}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:40px}
.banner{background:#b00020;color:#fff;font-weight:bold;font-size:1.15em;padding:12px 16px;
margin:16px 0;border-radius:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 7px;vertical-align:top}
th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{background:#f2f8ee}
.notes{font-size:13px;color:#333}.notes li{margin:2px 0}
figure{margin:16px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#333}
code,.mono{font-family:monospace;font-size:12px;word-break:break-all}
.institution{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.topology{overflow-x:auto;border:1px solid #eee;padding:6px;margin:8px 0;max-width:100%}
.muted{color:#666}details{margin:4px 0}
"""
MARKET_STYLE = """
.kind{border-left:6px solid #b00020;padding:6px 10px;font-weight:bold;background:#fdf0f2}
.theirs{border:2px dashed #555;padding:4px 14px 10px;margin:12px 0;background:#f7f7f7}
"""


@dataclass(frozen=True)
class Written:
    folder: Path
    files: list[Path]


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")[:60] or "x"
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _relative_link(target: Path, out: Path) -> str:
    relative = os.path.relpath(target.resolve(), out.resolve())
    return quote(Path(relative).as_posix()) + "/"


# --------------------------------------------------------------------------- institutions


@dataclass(frozen=True)
class _Institution:
    label: str
    cell: str | None  # the cell whose manifest.json it was read from
    svg: str | None
    fingerprint: dict[str, Any] | None
    name: str | None
    pattern: str | None
    problem: str | None  # why it could not be shown
    variants: int  # distinct institution digests among its cells


def _institution(label: str, cells: list[CellResult], index: int) -> _Institution:
    """The institution of a label, read from its first cell folder's manifest.json."""
    from govern.spec.checks import check_institution
    from govern.spec.errors import SpecInvalid
    from govern.spec.fingerprint import fingerprint
    from govern.spec.loader import LoadedInstitution
    from govern.spec.models import Institution
    from govern.spec.svg import draw_svg
    from govern.spec.validation import validate_data
    from govern.spec.yaml_source import YamlSource

    digests: set[str] = set()
    found: tuple[CellResult, Any] | None = None
    problem = "no cell of this institution has a run folder with a manifest.json yet"
    for cell in cells:
        if cell.folder is None:
            continue
        path = cell.folder / "manifest.json"
        try:
            data = read_regular(path, JSON_LIMIT)
            described = parse_json(data) if len(data) <= JSON_LIMIT else None
        except (OSError, NotRegularFile, ValueError, UnicodeDecodeError):
            problem = f"the manifest.json of cell {cell.id} cannot be read"
            continue
        if not isinstance(described, dict):
            problem = f"the manifest.json of cell {cell.id} is not a JSON object"
            continue
        digest = described.get("institution_digest")
        if isinstance(digest, str):
            digests.add(digest)
        manifest = described.get("manifest")
        definition = manifest.get("institution") if isinstance(manifest, dict) else None
        if found is None and isinstance(definition, dict):
            found = (cell, definition)
    if found is None:
        return _Institution(label, None, None, None, None, None, problem, len(digests))
    cell, definition = found
    source = YamlSource(file=str(cell.folder / "manifest.json"), data=definition)  # type: ignore[operator]
    try:
        institution = validate_data(Institution, definition, source)
        errors = check_institution(LoadedInstitution(institution, source))
    except SpecInvalid as exc:
        errors = exc.errors
    if errors:
        return _Institution(
            label,
            cell.id,
            None,
            None,
            None,
            None,
            f"the institution in cell {cell.id}'s manifest.json does not pass govern's checks: "
            f"{errors[0].message}",
            len(digests),
        )
    return _Institution(
        label=label,
        cell=cell.id,
        svg=draw_svg(institution, prefix=f"t{index}"),
        fingerprint=fingerprint(institution).model_dump(),
        name=institution.name,
        pattern=institution.pattern,
        problem=None,
        variants=len(digests),
    )


# --------------------------------------------------------------------------- HTML parts


def _table(headers: list[str], rows: Iterable[list[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _comparison_table(comparison: Comparison, anchors: dict[str, str]) -> str:
    headers, body = table_rows(comparison)
    text_columns = {"institution", "model", "overlay", "task"}
    numeric = {i for i, h in enumerate(headers) if h not in text_columns}
    head = "".join(f"<th>{_e(h)}</th>" for h in [*headers, "ledger heads"])
    rows = []
    for row, cells in zip(comparison.rows, body, strict=True):
        tds = "".join(
            f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(cells)
        )
        links = " ".join(
            f'<a href="#{anchors[c]}">s{seed}</a>'
            for c, seed in zip(row.cells, row.seeds, strict=True)
        )
        css = ' class="best"' if row.best else ""
        rows.append(f"<tr{css}>{tds}<td>{links}</td></tr>")
    notes = "".join(f"<li>{_e(line)}</li>" for line in footer(comparison))
    return (
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<ul class="notes">{notes}</ul>'
    )


def _cell_links(cells: list[str], seeds: list[int], anchors: dict[str, str]) -> str:
    links = " ".join(
        f'<a href="#{anchors[c]}">s{seed}</a>' for c, seed in zip(cells, seeds, strict=True)
    )
    return f"<details><summary>{len(cells)} cells</summary>{links}</details>"


def _text_table(headers: list[str], body: list[list[str]], text: set[str]) -> str:
    numeric = {i for i, h in enumerate(headers) if h not in text}
    return _table(headers, ([_e(c) for c in row] for row in body), numeric)


def _configuration(config: Configuration, anchors: dict[str, str]) -> str:
    parts = [f"<h3>{_e(configuration_title(config))}</h3>"]
    if config.label:
        parts.append(f'<p class="kind">{_e(config.label)}</p>')
    headers, body = collusion_rows(config)
    links = [_cell_links(row.cells, row.seeds, anchors) for row in config.rows]
    numeric = {i for i, h in enumerate(headers) if h != "regime"}
    rows = [[*(_e(c) for c in cells), link] for cells, link in zip(body, links, strict=True)]
    parts.append(_table([*headers, "ledger heads"], rows, numeric))
    parts.append(_text_table(*welfare_rows(config), {"regime", "training"}))
    if config.comparisons:
        parts.append(_text_table(*comparison_rows(config), {"first", "second", "test"}))
    return "".join(parts)


def _markets_section(markets: MarketReport, anchors: dict[str, str]) -> str:
    notes = "".join(f"<li>{_e(line)}</li>" for line in market_footer(markets))
    return (
        "".join(_configuration(c, anchors) for c in markets.configurations)
        + f'<ul class="notes">{notes}</ul>'
    )


def _published_section(paper: Paper) -> str:
    return (
        '<div class="theirs"><p class="kind">THEIR figures, not ours: published LLM results, '
        "not computed from this experiment.</p>"
        f"<p>{_e(paper_caption(paper))}</p>"
        + _text_table(*paper_rows(paper), {"regime (theirs)"})
        + _text_table(*paper_effect_rows(paper), {"regimes (theirs)"})
        + "</div>"
    )


def _figure(chart: Chart, anchors: dict[str, str]) -> str:
    data = base64.b64encode(chart.svg).decode("ascii")
    links = ", ".join(f'<a href="#{anchors[c]}">{_e(c)}</a>' for c in chart.cells)
    return (
        f'<figure id="{_e(chart.name)}"><img src="data:image/svg+xml;base64,{data}" '
        f'alt="{_e(chart.title)}: {_e(chart.description)}">'
        f"<figcaption>{_e(chart.description)}. Files: "
        f'<a href="figures/{_e(quote(chart.name))}.svg">SVG</a>, '
        f'<a href="figures/{_e(quote(chart.name))}.png">PNG</a>.'
        f"<details><summary>From {len(chart.cells)} cells (each links to its ledger head)"
        f"</summary>{links}</details></figcaption></figure>"
    )


def _short(text: str, size: int = 16) -> str:
    return text if len(text) <= size else text[:size] + "…"


def _ledger_table(results: ResultSet, anchors: dict[str, str], out: Path) -> str:
    headers = ["cell", "status", "items", "planned", "folder", "seq", "tree size", "root"]
    headers += ["head MAC"]
    headers += ["closed", "seal key"]
    rows = []
    for cell in results.cells:
        head = cell.ledger_head
        folder = (
            f'<a href="{_e(_relative_link(cell.folder, out))}">{_e(cell.folder.name)}</a>'
            if cell.folder is not None
            else '<span class="muted">none yet</span>'
        )
        if head is None:
            facts = [f'<span class="muted">{_e(cell.ledger_note or "no head")}</span>'] + [""] * 5
        else:
            reason = head.get("reason")
            facts = [
                _e(head["seq"]),
                _e(head["tree_size"]),
                f'<span class="mono" title="{_e(head["root"])}">{_e(_short(head["root"]))}</span>',
                f'<span class="mono" title="{_e(head["head_mac"])}">'
                f"{_e(_short(head['head_mac']))}</span>",
                _e(f"yes ({reason})" if head["closing"] else "no"),
                f'<span class="mono" title="{_e(head["public_key"])}">'
                f"{_e(_short(head['public_key']))}</span>",
            ]
        rows.append(
            f'<tr id="{anchors[cell.id]}"><td class="mono">{_e(cell.id)}</td>'
            f'<td>{_e(cell.status or "")}</td><td class="n">{len(cell.items)}</td>'
            f'<td class="n">{_e("" if cell.planned is None else cell.planned)}</td>'
            f"<td>{folder}</td>" + "".join(f"<td>{f}</td>" for f in facts) + "</tr>"
        )
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _institutions_section(institutions: list[_Institution]) -> str:
    parts = []
    measures = [
        ("roles", "roles"),
        ("agents", "agents"),
        ("stages", "stages"),
        ("gates", "gates"),
        ("branches", "branches"),
        ("loops", "loops"),
        ("depth", "depth"),
        ("calls_shortest_happy_path", "calls, shortest happy path"),
        ("calls_longest_happy_path", "calls, longest happy path"),
    ]
    for inst in institutions:
        title = inst.label + (f": {inst.name}" if inst.name else "")
        parts.append(f"<h3>{_e(title)}</h3>")
        if inst.problem is not None:
            parts.append(f'<p class="muted">{_e(inst.problem)}</p>')
            continue
        assert inst.fingerprint is not None and inst.svg is not None
        parts.append(
            f"<p>pattern <b>{_e(inst.pattern)}</b>; definition read from cell "
            f'<span class="mono">{_e(inst.cell)}</span> (its manifest.json)'
            + (
                f"; its cells ran {inst.variants} different institution digests"
                if inst.variants > 1
                else ""
            )
            + ".</p>"
        )
        rows = [
            [_e(name), _e("-" if inst.fingerprint[key] is None else inst.fingerprint[key])]
            for key, name in measures
        ]
        parts.append(
            f'<div class="institution">{_table(["fingerprint", "value"], rows, {1})}'
            f'<div class="topology">{inst.svg}</div></div>'
        )
    legend = (
        "Shapes: rounded box, a stage that answers; pointed box, a review; pointed box with a "
        "double border, a vote; stacked boxes, a cluster; pill, a terminal. Edges carry the "
        "decisions that take them (≤N: bounded); dashed: exhausted or unparsable routes; "
        "curves on the right go back up."
    )
    return f'<p class="notes">{_e(legend)}</p>' + "".join(parts)


def _provenance(results: ResultSet) -> str:
    import matplotlib
    import numpy
    import scipy

    parts = []
    for source in results.sources:
        rows = [
            ["kind", _e(source.kind)],
            ["folder", f'<span class="mono">{_e(source.path)}</span>'],
            ["id", _e(source.id)],
            ["description", _e(source.description or "")],
            ["command", f"<code>{_e(source.command or '(not recorded)')}</code>"],
            ["manifest", f'<span class="mono">{_e(source.manifest or "")}</span>'],
            ["digest", f'<span class="mono">{_e(source.digest or "")}</span>'],
            ["written by govern", _e(source.govern_version or "(not recorded)")],
            ["on Python", _e(source.python or "(not recorded)")],
            ["created", _e(source.created or "")],
        ]
        parts.append(_table(["", ""], rows, set()))
        if source.files:
            files = [
                [f'<span class="mono">{_e(f)}</span>', f'<span class="mono">{_e(d)}</span>']
                for f, d in sorted(source.files.items())
            ]
            parts.append("<details><summary>manifest files and their SHA-256</summary>")
            parts.append(_table(["file", "sha256"], files, set()) + "</details>")
    versions = (
        f"This report: govern {__version__}, Python {platform.python_version()} "
        f"({sys.implementation.name}), numpy {numpy.__version__}, scipy {scipy.__version__}, "
        f"matplotlib {matplotlib.__version__}."
    )
    return "".join(parts) + f"<p>{_e(versions)}</p>"


def _banner(results: ResultSet) -> str:
    label = results.label
    return f'<div class="banner" role="alert">{_e(label)}</div>' if label else ""


# --------------------------------------------------------------------------- writing


def build_report(
    results: ResultSet,
    comparison: Comparison | None,
    out: Path,
    markets: MarketReport | None = None,
    cascades: tuple[str, list[Chart]] | None = None,
) -> dict[str, bytes]:
    """Every file of the report, by its path relative to ``out``: the accuracy comparison
    of the cells that are not markets (None: there are none), the market section of those
    that are (None: there are none), and the tracer's analysis of the cells' events (its
    text and figures; None: no cell has events)."""
    taken: set[str] = set()
    anchors = {cell.id: f"ledger-{i}" for i, cell in enumerate(results.cells)}
    tasks = list(dict.fromkeys(r.task for r in comparison.rows)) if comparison else []
    charts: list[Chart] = []
    for task in tasks:
        slug = _slug(task, taken)
        charts.append(replace(accuracy_chart(comparison, task), name=f"accuracy-{slug}"))
        charts.append(replace(cost_chart(comparison, task), name=f"cost-accuracy-{slug}"))
    by_label: dict[str, list[CellResult]] = {}
    for cell in results.cells:
        by_label.setdefault(cell.institution, []).append(cell)
    institutions = [
        _institution(label, cells, i) for i, (label, cells) in enumerate(by_label.items())
    ]
    files: dict[str, bytes] = {}
    traced = cascades[1] if cascades is not None else []
    for chart in [*charts, *traced]:
        files[f"figures/{chart.name}.svg"] = chart.svg
        files[f"figures/{chart.name}.png"] = chart.png
    topology_taken: set[str] = set()
    for inst in institutions:
        if inst.svg is not None:
            files[f"figures/topology-{_slug(inst.label, topology_taken)}.svg"] = inst.svg.encode()
    tables = [render_markdown(comparison)] if comparison else []
    tables += [market_markdown(markets)] if markets else []
    files["tables.md"] = "\n".join(tables).encode("utf-8")
    title = "govern report: " + ", ".join(s.id for s in results.sources)
    descriptions = [s.description for s in results.sources if s.description]
    accuracy = [c for c in charts if c.name.startswith("accuracy-")]
    cost = [c for c in charts if c.name.startswith("cost-accuracy-")]
    sections = []
    if comparison is not None:
        sections += [
            ("comparison", "Comparison", _comparison_table(comparison, anchors)),
            (
                "accuracy",
                "Accuracy by institution and model",
                "".join(_figure(c, anchors) for c in accuracy),
            ),
            ("cost", "Cost and accuracy", "".join(_figure(c, anchors) for c in cost)),
        ]
    if markets is not None:
        sections += [
            ("markets", "Markets: collusion by regime", _markets_section(markets, anchors)),
            (
                "published",
                "Published figures (theirs, not ours)",
                _published_section(markets.paper),
            ),
        ]
    if cascades is not None:
        text, figures = cascades
        sections.append(
            (
                "cascades",
                "Cascades, elites and extremes (the event tracer)",
                f"<pre>{_e(text)}</pre>" + "".join(_figure(c, anchors) for c in figures),
            )
        )
    sections += [
        (
            "institutions",
            "Institutions: fingerprints and topologies",
            _institutions_section(institutions),
        ),
        (
            "ledger",
            "Ledger heads",
            '<p class="notes">The latest signed head recorded for each cell. Verify a cell '
            "with <code>govern audit FOLDER</code>: it checks the ledger against the key you "
            "hold, not against anything written here.</p>" + _ledger_table(results, anchors, out),
        ),
        ("provenance", "Provenance", _provenance(results)),
    ]
    style = STYLE + MARKET_STYLE if markets is not None else STYLE
    nav = " · ".join(f'<a href="#{key}">{_e(name)}</a>' for key, name, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{_e(name)}</h2>{html}</section>' for key, name, html in sections
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{style}</style></head><body>"
        f"{_banner(results)}<h1>{_e(title)}</h1>"
        + "".join(f"<p>{_e(d)}</p>" for d in descriptions)
        + f"<nav>{nav}</nav>{body}{_banner(results)}</body></html>\n"
    )
    files["report.html"] = page.encode("utf-8")
    return files


def write_report(
    results: ResultSet,
    comparison: Comparison | None,
    out: Path,
    markets: MarketReport | None = None,
    cascades: tuple[str, list[Chart]] | None = None,
) -> Written:
    """Write the report's files into ``out`` (created if needed; files of an earlier report
    there are replaced, anything else is left alone)."""
    if out.exists() and not out.is_dir():
        raise ResultsError(f"{out} exists and is not a folder: give another --out", usage=True)
    try:
        (out / "figures").mkdir(parents=True, exist_ok=True)
        written = []
        for name, data in build_report(results, comparison, out, markets, cascades).items():
            path = out / name
            write_atomic(path, data)
            written.append(path)
    except OSError as exc:
        raise ResultsError(
            f"cannot write the report into {out}: {exc.strerror or exc}", usage=True
        ) from None
    return Written(out, written)
