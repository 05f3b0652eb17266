"""Prices of models litellm does not know: a manifest's models.prices and an experiment's
prices file, each call costed from its tokens; mistakes found at their own lines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from govern.run.runner import RunRequest, execute, prepare
from govern.spec.checks import load_checked
from govern.spec.errors import SpecInvalid
from govern.tasks.gsm8k import SAMPLE
from tests.conftest import ROOT, spec_errors, write
from tests.test_litellm_client import (  # noqa: F401 - the server fixture
    USAGE,
    FakeServer,
    Reply,
    completion,
    server,
)
from tests.test_sampling import prepared_against, turns

PRICED = """\
id: bare
institution: bare.yaml
task: {name: gsm8k}
models:
  prices:
    openai/test-model: {input: 2.5, output: 10}
"""


def test_a_priced_model_costs_its_tokens_at_the_given_prices(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
) -> None:
    write(tmp_path, "bare.yaml", (ROOT / "institutions" / "bare.yaml").read_text())
    run = prepared_against(server, tmp_path, PRICED, model="openai/test-model")
    summary = asyncio.run(execute(run))
    per_call = (USAGE["prompt_tokens"] * 2.5 + USAGE["completion_tokens"] * 10) / 1_000_000
    calls = turns(tmp_path / "run")
    assert calls and summary.cost == pytest.approx(per_call * len(calls), abs=1e-6)  # rounded
    record = json.loads((tmp_path / "run" / "results.jsonl").read_text())
    assert record["cost"] == pytest.approx(per_call * len(calls))
    header = json.loads((tmp_path / "run" / "ledger.jsonl").read_text().splitlines()[0])
    assert header["body"]["config"]["prices"] == {
        "openai/test-model": {"input": 2.5, "output": 10.0}
    }


def test_a_price_for_a_model_the_run_does_not_use_is_an_error_at_its_line(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
) -> None:
    write(tmp_path, "bare.yaml", (ROOT / "institutions" / "bare.yaml").read_text())
    with pytest.raises(SpecInvalid) as caught:
        prepared_against(server, tmp_path, PRICED.replace("test-model", "tset-model"))
    (error,) = caught.value.errors
    assert (error.line, error.column) == (6, 5)
    assert "models.prices names 'openai/tset-model', which no role uses" in error.message


EXPERIMENT = """\
kind: experiment
id: priced
institutions: [institutions/bare.yaml]
models: [openai/local-model, sim/weak]
tasks: [{name: gsm8k, limit: 2}]
seeds: [0]
prices: prices.yaml
"""


@pytest.fixture
def priced(tmp_path: Path) -> Path:
    write(tmp_path, "pyproject.toml", "")
    write(tmp_path / "institutions", "bare.yaml", (ROOT / "institutions" / "bare.yaml").read_text())
    return write(tmp_path, "exp.yaml", EXPERIMENT)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("m: {input: 0.5, output: -1}\n", "prices.yaml:1:25: error: 'output': input should be"),
        ("m: {input: 1, outptu: 2}\n", "prices.yaml:1:15: error: unknown key 'outptu'"),
        ("m: {input: .nan, output: 1}\n", "prices.yaml:1:12: error: 'input': input should be"),
        ("- m\n", "prices.yaml:1:1: error: expected a mapping"),
    ],
)
def test_a_bad_prices_file_is_an_error_at_its_own_line(
    priced: Path, text: str, expected: str
) -> None:
    write(priced.parent, "prices.yaml", text)
    assert any(str(e).endswith(expected) or expected in str(e) for e in spec_errors(priced))


def test_each_cell_takes_the_prices_of_its_own_models(priced: Path) -> None:
    from govern.spec.checks import load_checked

    write(
        priced.parent,
        "prices.yaml",
        "openai/local-model: {input: 0.5, output: 1.5}\nx/y: {input: 1, output: 1}\n",
    )
    loaded = load_checked(priced)
    prices = {cell.model: cell.manifest.models.prices for cell in loaded.cells}  # type: ignore[union-attr]
    assert set(prices["openai-local-model"]) == {"openai/local-model"}
    assert prices["sim-weak"] == {}
    assert priced.parent / "prices.yaml" in loaded.files  # type: ignore[union-attr]


def test_a_prices_file_outside_the_project_is_refused(priced: Path) -> None:
    priced.write_text(EXPERIMENT.replace("prices.yaml", "../prices.yaml"))
    (error,) = spec_errors(priced)
    assert "points outside the project folder" in error.message and error.line == 7


SEATED = """\
id: seated
name: Two solvers on models of their own
era: none
pattern: pipeline
history: The first seat answers on a priced model; the second, on the simulator, waits.
roles:
  - id: solver
    title: Solver
    seats: 2
    models: [openai/priced-model, sim/strong]
    instructions: Solve the problem step by step and state one final answer.
entry: solve
stages:
  - id: solve
    kind: execute
    role: solver
    purpose: Solve the task and state the final answer.
    next: {done: done, unparsable: done}
  - id: done
    kind: terminal
"""


def test_a_seats_own_model_takes_its_price_in_an_experiment(
    priced: Path,
    server: FakeServer,  # noqa: F811
) -> None:
    write(priced.parent / "institutions", "seated.yaml", SEATED)
    priced.write_text(EXPERIMENT.replace("bare.yaml", "seated.yaml").replace(", sim/weak", ""))
    write(priced.parent, "prices.yaml", "openai/priced-model: {input: 2.5, output: 10}\n")
    [cell] = load_checked(priced).cells  # type: ignore[union-attr]
    assert cell.manifest.models.prices["openai/priced-model"].input == 2.5
    server.script = [Reply(body=completion("It comes to 18.\n#### 18"))] * 4
    folder = priced.parent / "run"
    request = RunRequest(
        priced, cell=cell.id, limit=1, concurrency=1, out=folder, data=SAMPLE, api_base=server.url
    )
    summary = asyncio.run(execute(prepare(request)))
    per_call = (USAGE["prompt_tokens"] * 2.5 + USAGE["completion_tokens"] * 10) / 1_000_000
    calls = turns(folder)
    assert [c["model"] for c in calls] == ["openai/priced-model"]
    assert summary.cost == pytest.approx(per_call, abs=1e-6)
