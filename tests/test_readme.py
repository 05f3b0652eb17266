"""The README's examples are real: the institution and manifest it shows validate."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.conftest import ROOT, spec_errors, write

README = (ROOT / "README.md").read_text()
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)


def test_the_readme_institution_example_validates(project: Path) -> None:
    institution = next(b for b in YAML_BLOCKS if "stages:" in b)
    assert spec_errors(write(project / "institutions", "example.yaml", institution)) == []


def test_the_readme_manifest_example_validates(project: Path) -> None:
    manifest = next(b for b in YAML_BLOCKS if "models:" in b and "stages:" not in b)
    shutil.copytree(ROOT / "institutions", project / "institutions")
    assert spec_errors(write(project / "manifests", "example.yaml", manifest)) == []
