"""The README's comparison table and report picture, from a finished experiment folder.

    .venv/bin/python docs/readme_report.py runs/compare [docs/report-simulated.png]

Writes the experiment's report (`govern report`), takes a screenshot of the top of its page
in headless Chromium (Debian's chromium, driven by playwright: `make test` installs both)
and prints the table as Markdown (`govern compare --markdown`) for the README. Run it on the
full `manifests/compare_institutions.yaml` experiment to refresh the README; the picture
carries the report's SIMULATED banner whenever the results are simulated.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    experiment = Path(argv[0])
    picture = Path(argv[1]) if len(argv) == 2 else ROOT / "docs" / "report-simulated.png"
    govern = [sys.executable, "-m", "govern.cli"]
    subprocess.run([*govern, "report", str(experiment)], check=True, cwd=ROOT)
    from playwright.sync_api import sync_playwright

    page_file = (experiment / "report" / "report.html").resolve()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1180})
            page.goto(page_file.as_uri(), wait_until="load")
            page.screenshot(path=str(picture))
        finally:
            browser.close()
    print(f"wrote {picture}", file=sys.stderr)
    table = subprocess.run(
        [*govern, "compare", str(experiment), "--markdown"],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    print(table.stdout, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
