"""`govern report`: a self-contained, deterministic HTML page, its tables and figures, the
topology drawings, hostile text shown as text, and the page opened in headless Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from experiment_builder import ROOT, SMALL_SKIPPED, small_experiment

from govern.experiments.compare import compare
from govern.experiments.report import build_report
from govern.experiments.results import CellResult, ItemOutcome, ResultSet, Source
from govern.run.summary import SIMULATED_LABEL
from govern.spec.checks import checked_institution, load_checked
from govern.spec.svg import draw_svg

CHROMIUM = Path(os.environ.get("GOVERN_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="session")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_experiment(tmp_path_factory)


@pytest.fixture(scope="session")
def report(experiment: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The experiment's report, written by the command line into a copy of the folder."""
    from govern.cli import main

    folder = tmp_path_factory.mktemp("report") / "exp"
    shutil.copytree(experiment, folder)
    assert main(["report", str(folder)]) == 0
    return folder / "report"


def cell_ids(experiment: Path) -> list[str]:
    return [c["id"] for c in json.loads((experiment / "experiment.json").read_text())["cells"]]


def test_report_writes_the_page_tables_and_figures(report: Path):
    names = sorted(str(p.relative_to(report)) for p in report.rglob("*") if p.is_file())
    assert names == [
        "figures/accuracy-gsm8k.png",
        "figures/accuracy-gsm8k.svg",
        "figures/against-agents.png",  # the tracer's: its cells' events
        "figures/against-agents.svg",
        "figures/ccdf-tce.png",
        "figures/ccdf-tce.svg",
        "figures/cost-accuracy-gsm8k.png",
        "figures/cost-accuracy-gsm8k.svg",
        "figures/topology-bare.svg",
        "figures/topology-senate.svg",
        "report.html",
        "tables.md",
    ]
    for png in report.glob("figures/*.png"):
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    for svg in report.glob("figures/*.svg"):
        ET.fromstring(svg.read_bytes())  # well-formed XML


def test_tables_md_is_compare_markdown(cli, report: Path, tmp_path: Path):
    done = cli("compare", str(report.parent), "--markdown", home=tmp_path)
    assert (report / "tables.md").read_text(encoding="utf-8") == done.stdout


def test_the_page_needs_no_network_and_no_script(report: Path):
    page = (report / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "default-src 'none'" in page  # the browser may load nothing else
    sources = re.findall(r'\ssrc="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/svg+xml;base64,") for s in sources)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "@import" not in page and "url(" not in page.replace("url(#", "")
    assert "@font-face" not in page
    for svg in report.glob("figures/*.svg"):
        text = svg.read_text(encoding="utf-8")
        assert "@font-face" not in text and "<image" not in text
        assert not re.search(r"(xlink:)?href=\"https?:", text)


def test_the_page_is_labelled_simulated_and_shows_every_cell(report: Path, experiment: Path):
    page = (report / "report.html").read_text(encoding="utf-8")
    assert SIMULATED_LABEL.replace("'", "&#x27;") in page
    assert page.index('class="banner"') < page.index("<h1>")
    for ident in cell_ids(experiment):
        assert ident in page
    # every figure's and row's ledger links lead to a ledger row of the page
    anchors = set(re.findall(r'<tr id="(ledger-\d+)"', page))
    links = set(re.findall(r'href="#(ledger-\d+)"', page))
    assert links and links <= anchors and len(anchors) == len(cell_ids(experiment))


def test_the_page_links_each_cell_folder_and_shows_its_head(report: Path, experiment: Path):
    page = (report / "report.html").read_text(encoding="utf-8")
    folder = experiment / "cells" / "bare.sim-weak.gsm8k.s0"
    head = json.loads((folder / "ledger.head").read_text())
    assert 'href="../cells/bare.sim-weak.gsm8k.s0/"' in page
    assert head["root"] in page and head["head_mac"] in page
    row = re.search(
        rf'<tr id="ledger-\d+"><td class="mono">{re.escape(SMALL_SKIPPED)}</td>.*?</tr>', page
    )
    assert row and "no ledger head recorded" in row.group(0)


def test_the_page_gives_the_command_versions_and_digests(report: Path, experiment: Path):
    page = (report / "report.html").read_text(encoding="utf-8")
    described = json.loads((experiment / "experiment.json").read_text())
    assert described["command"] in page and described["digest"] in page
    assert all(digest in page for digest in described["files"].values())
    assert "Python 3." in page and "govern 0." in page


def test_the_report_is_deterministic(experiment: Path, tmp_path: Path):
    from govern.cli import main

    folder = tmp_path / "exp"
    shutil.copytree(experiment, folder)
    assert main(["report", str(folder)]) == 0
    first = {p: p.read_bytes() for p in (folder / "report").rglob("*") if p.is_file()}
    assert main(["report", str(folder)]) == 0
    second = {p: p.read_bytes() for p in (folder / "report").rglob("*") if p.is_file()}
    assert first == second


def test_report_refusals(cli, experiment: Path, tmp_path: Path):
    (tmp_path / "file").write_text("x")
    done = cli("report", str(experiment), "--out", str(tmp_path / "file"), home=tmp_path)
    assert done.returncode == 2 and "not a folder" in done.stderr
    run = experiment / "cells" / "bare.sim-weak.gsm8k.s0"
    done = cli("report", str(run), home=tmp_path)
    assert done.returncode == 2 and "--out" in done.stderr
    done = cli("report", str(tmp_path / "missing"), home=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("govern: error:")
    empty = tmp_path / "empty"
    shutil.copytree(experiment, empty)
    with sqlite3.connect(empty / "results.sqlite") as db:
        db.execute("DELETE FROM items")
    done = cli("report", str(empty), home=tmp_path)
    assert done.returncode == 1 and "no finished items" in done.stderr
    assert not (empty / "report").exists()


def test_a_report_of_run_folders_goes_where_it_is_told(cli, experiment: Path, tmp_path: Path):
    run = experiment / "cells" / "bare.sim-weak.gsm8k.s0"
    done = cli("report", str(run), "--out", str(tmp_path / "out"), home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "report.html").is_file()


# --------------------------------------------------------------------------- hostile text

EVIL = "<script>alert(1)</script>"


def _evil_cell(institution: str, seed: int) -> CellResult:
    items = tuple(
        ItemOutcome(f"i{n}", n % 2 == 0, True, 1, 10, None, True, False) for n in range(6)
    )
    return CellResult(
        id=f"{institution}.m<b>.gsm8k.s{seed}",
        institution=institution,
        model="m<b>",
        task="gsm8k",
        seed=seed,
        overlay=None,
        source=Path("/x"),
        folder=None,
        items=items,
        ledger_head=None,
        ledger_note=f"note {EVIL}",
        simulated="yes",
    )


def test_hostile_text_in_results_shows_as_text(tmp_path: Path):
    results = ResultSet(
        (
            Source(
                kind="experiment",
                path=Path("/x"),
                id=f"id{EVIL}",
                description=f"about {EVIL}",
                command=f"govern run '{EVIL}'",
                files={f"/{EVIL}.yaml": "ab" * 32},
            ),
        ),
        (_evil_cell(EVIL, 0), _evil_cell("plain", 0)),
    )
    files = build_report(results, compare(results), tmp_path)
    page = files["report.html"].decode("utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>" not in page.replace("<b>pattern", "")
    assert "&lt;script&gt;" in files["tables.md"].decode("utf-8")
    names = [n for n in files if n.startswith("figures/")]
    assert all(re.fullmatch(r"figures/[a-z0-9_.-]+", n) for n in names), names


# --------------------------------------------------------------------------- topology drawings

SHIPPED = [
    *sorted(p.relative_to(ROOT) for p in (ROOT / "institutions").glob("*.yaml")),
    Path("manifests/senate.yaml"),
]


@pytest.mark.parametrize("path", SHIPPED, ids=str)
def test_every_shipped_institution_draws_as_svg(path: Path):
    institution = checked_institution(load_checked(ROOT / path))
    svg = draw_svg(institution, prefix="t1")
    assert draw_svg(institution, prefix="t1") == svg  # deterministic
    root = ET.fromstring(svg)
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {s.id for s in institution.stages} <= texts
    assert 'id="t1-arrow"' in svg and "<script" not in svg
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert len(root.findall(".//s:path", ns)) >= len(institution.stages) - 1


def test_a_drawing_escapes_the_institution_s_text():
    from govern.spec.models import Institution

    institution = checked_institution(load_checked(ROOT / "institutions" / "bare.yaml"))
    evil = Institution.model_validate({**institution.model_dump(), "name": f"x {EVIL} & y"})
    svg = draw_svg(evil, prefix='"><script>')
    ET.fromstring(svg)
    assert "<script" not in svg and "&lt;script&gt;" in svg


# --------------------------------------------------------------------------- in a browser


def _browser():
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package")
    return playwright


@contextlib.contextmanager
def opened_page(html: Path, problems: list[str], requests: list[str]) -> Iterator[Any]:
    """``html`` in headless Chromium, 1300 px wide; console errors and warnings, page errors
    and failed requests go to ``problems``, every request's URL to ``requests``."""
    playwright = _browser()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.as_uri(), wait_until="load")
            yield page
        finally:
            browser.close()


def test_the_report_opens_in_headless_chromium(report: Path, experiment: Path, tmp_path: Path):
    problems: list[str] = []
    requests: list[str] = []
    with opened_page(report / "report.html", problems, requests) as page:
        text = page.inner_text("body")
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])"
        )
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
    assert problems == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert text.startswith(SIMULATED_LABEL)
    for ident in cell_ids(experiment):
        assert ident in text
    assert images and all(done and width > 0 for done, width in images)
    assert (tmp_path / "report.png").stat().st_size > 10_000
