"""Load institutions and manifests from YAML, resolving references safely.

A manifest names its institution by relative path or inline, and may
``extends:`` a base manifest whose keys it overrides (mappings merge key by key;
lists and values are replaced). References must stay inside the project folder
and must not loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govern.spec.errors import SpecError, SpecInvalid, quoted
from govern.spec.models import Institution, Manifest
from govern.spec.validation import suggest, validate_data
from govern.spec.yaml_source import YamlPath, YamlSource, read_yaml

if TYPE_CHECKING:
    from govern.experiments.spec import LoadedExperiment

PROJECT_MARKERS = ("pyproject.toml", ".git", "govern.toml")
MAX_EXTENDS = 16  # bases a manifest may stand on, one on another


@dataclass(frozen=True)
class LoadedInstitution:
    """An institution and where its YAML came from (``prefix`` locates it inside a manifest)."""

    institution: Institution
    source: YamlSource
    prefix: YamlPath = ()

    def error(self, path: YamlPath, message: str) -> SpecError:
        return self.source.error((*self.prefix, *path), message)


@dataclass(frozen=True)
class LoadedManifest:
    manifest: Manifest
    source: YamlSource
    institution: LoadedInstitution

    @property
    def files(self) -> list[Path]:
        """Every file the manifest was built from: itself, the bases it extends, the institution."""
        names = {p.file for p in self.source.values.values()}
        names |= {p.file for p in self.institution.source.values.values()}
        return sorted(Path(name).resolve() for name in names)


def project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding a project marker, else ``start``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if any(_exists(folder / marker) for marker in PROJECT_MARKERS):
            return folder
    return start


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a folder we may not look into holds no marker we can use
        return False


def spec_kind(source: YamlSource) -> str:
    """'experiment' (it says ``kind: experiment``), else 'institution' or 'manifest', judged
    by the top-level keys."""
    data = source.data
    if "kind" in data:
        kind = data["kind"]
        if kind == "experiment":
            return "experiment"
        raise SpecInvalid(
            [
                source.error(
                    ("kind",),
                    f"unknown kind '{quoted(kind)}'{suggest(str(kind), ['experiment'])}: a spec "
                    "names its kind only to be an experiment (kind: experiment); institutions "
                    "and manifests have no kind",
                    at_value=True,
                )
            ]
        )
    if "stages" in data:
        return "institution"
    if "institution" in data or "extends" in data:
        return "manifest"
    raise SpecInvalid(
        [
            source.error(
                (), "not a govern spec: an institution has 'stages', a manifest has 'institution'"
            )
        ]
    )


def load_spec(path: Path) -> LoadedInstitution | LoadedManifest | LoadedExperiment:
    """Load any kind of spec file."""
    source = read_yaml(path)
    kind = spec_kind(source)
    if kind == "institution":
        return _institution_from(source)
    if kind == "experiment":
        from govern.experiments.spec import load_experiment

        return load_experiment(source, path)
    return _manifest_from(source, path)


def load_institution(path: Path) -> LoadedInstitution:
    source = read_yaml(path)
    kind = spec_kind(source)
    if kind != "institution":
        raise SpecInvalid(
            [source.error((), f"expected an institution (with 'stages'), found {_a(kind)}")]
        )
    return _institution_from(source)


def _institution_from(source: YamlSource, prefix: YamlPath = ()) -> LoadedInstitution:
    data = source.data
    for key in prefix:
        data = data[key]
    return LoadedInstitution(validate_data(Institution, data, source, prefix), source, prefix)


def _manifest_from(source: YamlSource, path: Path) -> LoadedManifest:
    root = project_root(path.parent)
    merged = _resolve_extends(source, path, root, chain=(path.resolve(),))
    reference = merged.data.get("institution")
    if isinstance(reference, str):
        inst_path = _reference(merged, ("institution",), reference, root)
        loaded_inst = load_institution(inst_path)
    elif isinstance(reference, dict):
        loaded_inst = _institution_from(merged, ("institution",))
    elif reference is None:
        raise SpecInvalid(
            [
                merged.error(
                    (),
                    "missing required key 'institution': give a relative "
                    "path to an institution file or an inline institution",
                )
            ]
        )
    else:
        raise SpecInvalid(
            [
                merged.error(
                    ("institution",),
                    "'institution' must be a relative path or an inline institution mapping",
                )
            ]
        )
    data = {**merged.data, "institution": loaded_inst.institution}
    manifest = validate_data(Manifest, data, merged)
    return LoadedManifest(manifest, merged, loaded_inst)


def _resolve_extends(
    source: YamlSource, path: Path, root: Path, chain: tuple[Path, ...]
) -> YamlSource:
    base_ref = source.data.get("extends")
    if base_ref is None:
        return source
    if not isinstance(base_ref, str):
        raise SpecInvalid(
            [source.error(("extends",), "'extends' must be a relative path to a base manifest")]
        )
    base_path = _reference(source, ("extends",), base_ref, root)
    if len(chain) > MAX_EXTENDS:
        raise SpecInvalid(
            [
                source.error(
                    ("extends",),
                    f"more than {MAX_EXTENDS} manifests extend one another here: "
                    "merge some of the bases",
                )
            ]
        )
    if base_path in chain:
        loop = " -> ".join(p.name for p in (*chain, base_path))
        raise SpecInvalid(
            [source.error(("extends",), f"manifests extend each other in a loop: {loop}")]
        )
    base = read_yaml(base_path)
    base_kind = spec_kind(base)
    if base_kind != "manifest":
        raise SpecInvalid(
            [
                source.error(
                    ("extends",),
                    f"'{quoted(base_ref)}' is {_a(base_kind)}; 'extends' takes a base manifest",
                )
            ]
        )
    base = _resolve_extends(base, base_path, root, (*chain, base_path))
    return _merge(base, source)


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _reference(source: YamlSource, at: YamlPath, reference: str, root: Path) -> Path:
    """Resolve a relative path written at ``at``, relative to the file that wrote it."""
    written_in = Path(source.value_position(at).file)
    if not reference or not reference.isprintable():
        raise SpecInvalid(
            [source.error(at, f"'{quoted(reference)}' is not a file name: give a relative path")]
        )
    try:
        target = (written_in.parent / reference).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # too long, a symlink loop, ...
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecInvalid(
            [source.error(at, f"'{quoted(reference)}' cannot be resolved: {reason}")]
        ) from None
    if Path(reference).is_absolute() or not target.is_relative_to(root):
        raise SpecInvalid(
            [
                source.error(
                    at,
                    f"'{quoted(reference)}' points outside the project folder "
                    f"({root}); use a path inside it",
                )
            ]
        )
    if not _exists(target):
        raise SpecInvalid(
            [source.error(at, f"'{quoted(reference)}' does not exist (looked for {target})")]
        )
    return target


def _merge(base: YamlSource, child: YamlSource) -> YamlSource:
    """Child keys override base keys; positions follow whichever file supplied the value."""
    merged = YamlSource(
        file=child.file,
        data=_merge_data(base.data, child.data),
        values={**base.values, **child.values},
        keys={**base.keys, **child.keys},
    )
    return merged


def _merge_data(base: Any, child: Any) -> Any:
    if isinstance(base, dict) and isinstance(child, dict):
        out = dict(base)
        for key, value in child.items():
            out[key] = _merge_data(base.get(key), value) if key in base else value
        return out
    return child
