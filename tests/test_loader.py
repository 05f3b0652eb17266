"""Manifests: institution references, inline institutions, and extends."""

from __future__ import annotations

from pathlib import Path

from govern.spec.checks import load_checked
from govern.spec.loader import LoadedManifest, project_root
from tests.conftest import TINY, spec_errors, write


def test_manifest_extends_a_base_and_overrides_keys(project: Path) -> None:
    write(project / "institutions", "tiny.yaml", TINY)
    write(
        project / "manifests" / "base",
        "base.yaml",
        "id: base\ninstitution: ../../institutions/tiny.yaml\nmodels:\n  default: sim/weak\n"
        "  roles:\n    writer: sim/strong\nseed: 3\n",
    )
    path = write(
        project / "manifests",
        "child.yaml",
        "id: child\nextends: base/base.yaml\nmodels:\n  default: sim/medium\n",
    )
    loaded = load_checked(path)
    assert isinstance(loaded, LoadedManifest)
    manifest = loaded.manifest
    assert manifest.id == "child" and manifest.seed == 3
    assert manifest.models.default == "sim/medium"
    assert manifest.models.roles == {"writer": "sim/strong"}  # mappings merge key by key
    assert manifest.institution.id == "tiny"  # resolved relative to the base file


def test_errors_in_inherited_keys_point_into_the_base_file(project: Path) -> None:
    write(project, "tiny.yaml", TINY)
    write(project, "base.yaml", "id: base\ninstitution: tiny.yaml\nseed: many\n")
    path = write(project, "child.yaml", "id: child\nextends: base.yaml\n")
    (error,) = spec_errors(path)
    assert error.file.endswith("base.yaml") and error.line == 3 and "'seed'" in error.message


def test_extends_must_name_a_manifest(project: Path) -> None:
    write(project, "tiny.yaml", TINY)
    path = write(project, "child.yaml", "id: child\nextends: tiny.yaml\n")
    (error,) = spec_errors(path)
    assert "'extends' takes a base manifest" in error.message and error.line == 2


def test_institution_reference_must_be_an_institution(project: Path) -> None:
    write(project, "tiny.yaml", TINY)
    write(project, "other.yaml", "id: other\ninstitution: tiny.yaml\n")
    path = write(project, "m.yaml", "id: m\ninstitution: other.yaml\n")
    (error,) = spec_errors(path)
    assert "expected an institution" in error.message


def test_project_root_is_the_nearest_folder_with_a_marker(project: Path) -> None:
    nested = project / "a" / "b"
    nested.mkdir(parents=True)
    assert project_root(nested) == project.resolve()
