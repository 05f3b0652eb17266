"""Experiment manifests: parsed and checked like any spec, expanded into cells."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govern.experiments.spec import LoadedExperiment, cell_id, model_label
from govern.spec.checks import load_checked
from govern.spec.errors import SpecInvalid
from tests.conftest import ROOT, TINY, spec_errors, write
from tests.conftest import run_cli as govern

SHIPPED = ROOT / "manifests" / "compare_institutions.yaml"
SAFE_ID = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)+$")

# Line numbers in the error tests refer to this text: keep it stable.
GOOD = textwrap.dedent("""\
    kind: experiment
    id: grid
    institutions:
      - ../institutions/tiny.yaml
      - base.yaml
    models:
      - sim/weak
      - {name: strong_checker, default: sim/medium, roles: {checker: sim/strong}}
    tasks:
      - {name: gsm8k, sample: {size: 5, seed: 3}}
    seeds: [0, 1]
    overlays:
      - none
      - name: strict_regime
        governance:
          states: [active, suspended]
          initial: active
          acting: [active]
    parsing: tolerant
    """)
BASE = "id: base\ninstitution: ../institutions/tiny.yaml\nmodels: {default: sim/strong}\n"


def experiment_project(project: Path, text: str = GOOD) -> Path:
    write(project / "institutions", "tiny.yaml", TINY)
    write(project / "manifests", "base.yaml", BASE)
    return write(project / "manifests", "grid.yaml", text)


def loaded_experiment(path: Path) -> LoadedExperiment:
    loaded = load_checked(path)
    assert isinstance(loaded, LoadedExperiment)
    return loaded


def test_the_shipped_comparison_validates_and_has_81_cells_with_unique_ids() -> None:
    loaded = loaded_experiment(SHIPPED)
    ids = [cell.id for cell in loaded.cells]
    # 8 institutions + the senate, x 3 models, x 1 task, x 3 seeds: 27 cells per seed
    assert len(ids) == 9 * 3 * 1 * 3 == 81 and len(set(ids)) == 81
    assert all(SAFE_ID.match(i) for i in ids)
    assert "senate.sim-medium.gsm8k.s0" in ids and "tang.sim-weak.gsm8k.s1" in ids
    assert {c.manifest.institution.id for c in loaded.cells} >= {"roman_senate", "us_federal"}
    assert all(
        c.manifest.task is not None and c.manifest.task.name == "gsm8k" for c in loaded.cells
    )


def test_the_cli_validates_the_shipped_experiment_and_the_manifests_folder() -> None:
    result = govern("validate", "--json", "manifests/compare_institutions.yaml", "manifests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"kind": "experiment"' in result.stdout


def test_cells_carry_the_manifest_they_run(project: Path) -> None:
    loaded = loaded_experiment(experiment_project(project))
    cells = {cell.id: cell for cell in loaded.cells}
    assert len(cells) == 2 * 2 * 1 * 2 * 2
    plain = cells["tiny.sim-weak.gsm8k.s0.none"]
    assert plain.manifest.governance is None and plain.manifest.seed == 0
    assert plain.manifest.models.default == "sim/weak" and plain.manifest.parsing.mode == "tolerant"
    strict = cells["base.strong_checker.gsm8k.s1.strict_regime"]
    assert strict.manifest.id == "base" and strict.manifest.seed == 1
    assert strict.manifest.models.roles == {"checker": "sim/strong"}
    assert strict.manifest.governance is not None and strict.manifest.governance.initial == "active"
    assert strict.task.sample is not None and strict.task.sample.indices(100) == sorted(
        strict.task.sample.indices(100)
    )
    assert len(strict.task.sample.indices(100)) == 5


def test_cell_ids_are_stable_across_processes() -> None:
    script = (
        "from pathlib import Path\n"
        "from govern.spec.checks import load_checked\n"
        f"print(' '.join(c.id for c in load_checked(Path({str(SHIPPED)!r})).cells))\n"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        ).stdout
        for seed in ("1", "2")
    }
    assert runs == {" ".join(c.id for c in loaded_experiment(SHIPPED).cells) + "\n"}


# (substitution in GOOD, the line and column of the one error, words of its message)
HOSTILE = [
    ("kind: experiment", "kind: experimnt", 1, 7, "did you mean 'experiment'"),
    ("models:\n", "modles:\n", 6, 1, "unknown key 'modles' (did you mean 'models'?)"),
    ("seeds: [0, 1]", "seeds: []", 11, 8, "at least 1 item"),
    ("tasks:\n  - {name: gsm8k, sample: {size: 5, seed: 3}}", "tasks: []", 9, 8, "at least 1"),
    ("seeds: [0, 1]", "seeds: [0, one]", 11, 12, "seed 'one' is not a whole number"),
    ("seeds: [0, 1]", "seeds: [0, 1.5]", 11, 12, "seed '1.5' is not a whole number"),
    ("seeds: [0, 1]", "seeds: [0, true]", 11, 12, "not a whole number"),
    ("seeds: [0, 1]", "seeds: [1, 1]", 11, 12, "seed 1 is listed twice"),
    ("  - none\n", "  - strict_regime\n", 14, 5, "a second overlay labelled 'strict_regime'"),
    ("../institutions/tiny.yaml", "../../../etc/passwd", 4, 5, "points outside the project"),
    ("../institutions/tiny.yaml", "../institutions/gone.yaml", 4, 5, "does not exist"),
    ("../institutions/tiny.yaml", "grid.yaml", 4, 5, "is an experiment"),
    ("  - sim/weak\n", "  - {name: strong_checker, default: sim/weak}\n", 8, 6, "a second model"),
    ("{checker: sim/strong}", "{chekker: sim/strong}", 8, 57, "no role 'chekker'"),
    ("name: gsm8k", "name: gsm8l", 10, 12, "no task 'gsm8l' (did you mean 'gsm8k'?)"),
    ("initial: active", "initial: suspended", 17, 7, "agents start suspended, which may not"),
]


@pytest.mark.parametrize(("old", "new", "line", "column", "words"), HOSTILE, ids=lambda v: str(v))
def test_careless_input_is_one_error_at_its_line_and_no_traceback(
    project: Path, old: str, new: str, line: int, column: int, words: str
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new)
    path = experiment_project(project, text)
    errors = spec_errors(path)
    assert len(errors) == 1, errors
    assert (errors[0].line, errors[0].column) == (line, column), errors[0]
    assert words in errors[0].message
    result = govern("validate", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    lines = [x for x in result.stdout.splitlines() if ": error: " in x]
    assert lines == [f"{path}:{line}:{column}: error: {errors[0].message}"]


def test_an_empty_overlay_axis_is_an_error(project: Path) -> None:
    head = GOOD.split("overlays:")[0]
    errors = spec_errors(experiment_project(project, head + "overlays: []\n"))
    assert [(e.line, "at least 1" in e.message) for e in errors] == [(12, True)]


def test_an_institution_error_is_reported_in_its_own_file(project: Path) -> None:
    path = experiment_project(project)
    write(project / "institutions", "tiny.yaml", TINY.replace("entry: write", "entry: wrte"))
    errors = spec_errors(path)
    assert [(Path(e.file).name, e.line) for e in errors] == [("tiny.yaml", 13)]


def test_graph_of_an_experiment_is_refused_cleanly() -> None:
    result = govern("graph", "manifests/compare_institutions.yaml")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "an experiment is a grid of institutions" in result.stderr


# -- cell ids for random grids -------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
# model names are printable and carry no spaces around them (spaces inside are theirs)
model_names = st.text(alphabet="abcAB/.-_:0 ", min_size=1, max_size=8).map(str.strip).filter(bool)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    institutions=st.lists(names, min_size=1, max_size=3, unique=True),
    models=st.lists(st.tuples(model_names, st.none() | names), min_size=1, max_size=3),
    seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=3, unique=True),
    overlays=st.none() | st.lists(names, min_size=1, max_size=3, unique=True),
    limit=st.none() | st.integers(1, 50),
)
def test_cell_ids_of_random_grids_are_unique_safe_and_stable(
    tmp_path_factory: pytest.TempPathFactory,
    institutions: list[str],
    models: list[tuple[str, str | None]],
    seeds: list[int],
    overlays: list[str] | None,
    limit: int | None,
) -> None:
    project = tmp_path_factory.mktemp("grid")
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    for name in institutions:
        write(project, f"{name}.yaml", TINY.replace("id: tiny", f"id: {name}"))
    model_lines = [f"  - {{default: {m!r}{f', name: {n}' if n else ''}}}" for m, n in models]
    text = "\n".join(
        [
            "kind: experiment",
            "id: random",
            "institutions: [" + ", ".join(f"{n}.yaml" for n in institutions) + "]",
            "models:",
            *model_lines,
            f"tasks: [{{name: gsm8k, limit: {limit}}}]" if limit else "tasks: [gsm8k]",
            f"seeds: {seeds}",
            *([f"overlays: [{', '.join(overlays)}]"] if overlays else []),
        ]
    )
    path = write(project, "grid.yaml", text + "\n")
    try:
        first = [cell.id for cell in loaded_experiment(path).cells]
    except SpecInvalid as exc:  # two model choices with one label: refused, never a clash
        assert all("a second model choice labelled" in e.message for e in exc.errors), exc
        labels = [n or model_label(m) for m, n in models]
        assert len(set(labels)) < len(labels)
        return
    again = [cell.id for cell in loaded_experiment(path).cells]
    assert first == again
    assert len(first) == len(set(first))
    assert len(first) == len(institutions) * len(models) * len(seeds) * len(overlays or [None])
    assert all(SAFE_ID.match(i) and len(i) < 255 for i in first)


def test_cell_id_scheme() -> None:
    assert cell_id("tang", "sim-weak", "gsm8k", 1, "strict_regime") == (
        "tang.sim-weak.gsm8k.s1.strict_regime"
    )
    assert cell_id("senate", model_label("sim/medium"), "gsm8k", 0, None) == (
        "senate.sim-medium.gsm8k.s0"
    )
    assert model_label("Qwen/Qwen2.5-7B") == "qwen-qwen2-5-7b" and model_label("///") == "model"


def test_the_readme_experiment_example_validates(project: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    example = next(b for b in blocks if "kind: experiment" in b)
    write(project / "institutions", "tang.yaml", (ROOT / "institutions" / "tang.yaml").read_text())
    assert spec_errors(write(project / "manifests", "regimes.yaml", example)) == []


def test_single_run_settings_on_an_experiment_are_refused_plainly() -> None:
    done = govern("run", "manifests/compare_institutions.yaml", "--limit", "1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--limit: an experiment sets these in its file" in done.stderr


def test_experiment_settings_on_a_single_run_are_refused_plainly() -> None:
    done = govern("run", "manifests/senate.yaml", "--workers", "2", "--retry-failed")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--workers, --retry-failed: only for an experiment" in done.stderr
