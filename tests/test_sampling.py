"""Each call's own seed and the manifest's sampling: seats are independent samples, runs are
reproducible, and what the manifest sets is what a real model is sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from govern.engine.context import DEFAULT_MAX_TOKENS
from govern.engine.seeds import SEED_BITS, call_seed
from govern.ledger.audit import audit
from govern.models.base import ModelRequest, ModelResponse
from govern.models.router import ModelRouter
from govern.models.sim.client import SimClient
from govern.models.sim.params import PRESETS
from govern.run.runner import RunRequest, execute, prepare
from govern.spec.checks import checked_institution, load_checked
from govern.spec.errors import SpecInvalid
from govern.spec.models import ModelChoice, Sampling, SamplingPolicy
from govern.tasks.gsm8k import SAMPLE
from tests.conftest import ROOT, run_cli, spec_errors, write
from tests.engine_harness import run_item
from tests.test_litellm_client import (  # the loopback server and its replies
    FakeServer,
    Reply,
    completion,
    error,
    server,  # noqa: F401
)
from tests.test_slates import SENATE as TEST_SLATES_SENATE

SENATE = (ROOT / "manifests" / "senate.yaml").read_text()


def run_senate(
    folder: Path,
    *,
    concurrency: int = 8,
    extra: str = "",
    limit: int = 6,
    seed: int = 0,
    text: str = SENATE,
) -> Path:
    """The senate (or the manifest ``text``) on the simulator, with ``extra`` keys."""
    text = text.replace("\nseed: 0\n", f"\nseed: {seed}\n")
    manifest = write(folder, "senate.yaml", text + extra)
    write(folder, "pyproject.toml", "")
    out = folder / "run"
    request = RunRequest(manifest, limit=limit, concurrency=concurrency, out=out, data=SAMPLE)
    asyncio.run(execute(prepare(request)))
    return out


def prepared_against(loopback: FakeServer, folder: Path, text: str = SENATE, **fields: object):
    """The senate (or ``text``) on one sample item, one call at a time, prepared to run
    against the ``loopback`` server, which answers every call with a parsable answer."""
    loopback.script = [Reply(body=completion("It comes to 18.\n#### 18"))] * 20
    write(folder, "pyproject.toml", "")
    manifest = write(folder, "senate.yaml", text)
    return prepare(
        RunRequest(
            manifest,
            limit=1,
            concurrency=1,
            out=folder / "run",
            data=SAMPLE,
            api_base=loopback.url,
            **fields,
        )
    )


def turns(folder: Path) -> list[dict]:
    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return [{"item": r["id"], **t} for r in records for t in r["turns"]]


def identity(turn: dict) -> tuple:
    """What a call's seed is derived from, as its turn records it."""
    return (
        turn["item"],
        turn["stage"],
        turn["agent"],
        turn["visit"],
        turn.get("sample", 0),
        turn.get("reask", 0),
    )


# --- the derivation ---------------------------------------------------------------------------


def test_a_call_seed_is_stable_and_fits_a_provider_seed() -> None:
    seed = call_seed(0, "gsm8k/test/0001", "division", "senator#3", 1)
    assert seed == call_seed(0, "gsm8k/test/0001", "division", "senator#3", 1)
    assert 0 <= seed < 2**SEED_BITS


parts = st.tuples(
    st.integers(0, 2**31),
    st.text(max_size=12),
    st.text(max_size=12),
    st.text(max_size=12),
    st.integers(1, 50),
    st.integers(0, 50),
)


@given(parts, parts)
def test_different_calls_get_different_seeds(one: tuple, other: tuple) -> None:
    if one != other:  # 31 bits: a collision among a few hundred examples would be a bug
        assert call_seed(*one) != call_seed(*other)


def test_seats_visits_and_samples_each_change_the_seed() -> None:
    base = (7, "item", "division", "senator#1", 1, 0)
    variants = [(7, "item", "division", f"senator#{n}", 1, 0) for n in range(1, 6)] + [
        (7, "item", "division", "senator#1", 2, 0),
        (7, "item", "division", "senator#1", 1, 1),
    ]
    seeds = {call_seed(*v) for v in variants}
    assert len(seeds) == len(variants) and call_seed(*base) in seeds


def test_seeds_do_not_depend_on_concurrency_or_finishing_order(tmp_path: Path) -> None:
    one_at_a_time = run_senate(tmp_path / "c1", concurrency=1)
    many = run_senate(tmp_path / "c8", concurrency=8)
    first = {identity(t): t["seed"] for t in turns(one_at_a_time)}
    assert first == {identity(t): t["seed"] for t in turns(many)}
    assert all(seed == call_seed(0, *key) for key, seed in first.items())


def test_the_seats_of_a_body_get_distinct_seeds_and_the_ledger_records_them(
    tmp_path: Path,
) -> None:
    folder = run_senate(tmp_path, limit=2)
    recorded = turns(folder)
    by_stage: dict[tuple, set[int]] = {}
    for turn in recorded:
        if turn["agent"].startswith("senator#"):
            key = (turn["item"], turn["stage"], turn["visit"])
            by_stage.setdefault(key, set()).add(turn["seed"])
    assert by_stage and all(len(seeds) == 5 for seeds in by_stage.values())
    ledger = [json.loads(line) for line in (folder / "ledger.jsonl").read_text().splitlines()]
    logged = sorted(e["body"]["seed"] for e in ledger if e["kind"] == "turn")
    assert logged == sorted(t["seed"] for t in recorded)
    assert audit(folder).intact


def test_a_shared_seed_sends_the_runs_seed_with_every_call(tmp_path: Path) -> None:
    folder = run_senate(tmp_path, limit=2, extra="sampling: {seed: shared}\n", seed=11)
    assert {t["seed"] for t in turns(folder)} == {11}


def test_the_simulator_ignores_call_seeds_and_sampling(tmp_path: Path) -> None:
    plain = run_senate(tmp_path / "plain")
    tuned = run_senate(
        tmp_path / "tuned", extra="sampling: {temperature: 1.5, top_p: 0.5, seed: shared}\n"
    )
    texts = [(identity(t), t["text"]) for t in turns(plain)]
    assert texts == [(identity(t), t["text"]) for t in turns(tuned)]


# --- the manifest's sampling ------------------------------------------------------------------


def test_stage_settings_override_role_settings_override_defaults() -> None:
    policy = SamplingPolicy.model_validate(
        {
            "temperature": 0.7,
            "max_tokens": 400,
            "extra": {"top_k": 40},
            "roles": {"senator": {"temperature": 0.9, "extra": {"stop": ["###"]}}},
            "stages": {"division": {"max_tokens": 20}},
        }
    )
    assert policy.for_call("consul", "motion") == Sampling(
        temperature=0.7, max_tokens=400, extra={"top_k": 40}
    )
    assert policy.for_call("senator", "division") == Sampling(
        temperature=0.9, max_tokens=20, extra={"top_k": 40, "stop": ["###"]}
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "sampling:\n  roles:\n    senatr: {temperature: 0.5}\n",
            "no role 'senatr' in the institution (did you mean 'senator'?)",
        ),
        (
            "sampling:\n  stages:\n    divison: {max_tokens: 8}\n",
            "no stage 'divison' in the institution (did you mean 'division'?)",
        ),
        ("sampling:\n  temperature: 3\n", "less than or equal to 2"),
        ("sampling:\n  extra: {seed: 4}\n", "extra may not set seed"),
        ("sampling:\n  seed: random\n", "'per_call' or 'shared'"),
    ],
)
def test_a_wrong_sampling_section_is_an_error_at_its_line(
    tmp_path: Path, section: str, message: str
) -> None:
    write(tmp_path, "pyproject.toml", "")
    path = write(tmp_path, "senate.yaml", SENATE + section)
    errors = spec_errors(path)
    assert any(message in e.message for e in errors), errors
    line = len(SENATE.splitlines()) + 2
    assert all(e.line >= line for e in errors), errors


# --- what a real model is sent ----------------------------------------------------------------


def test_a_real_model_is_sent_each_calls_seed_and_the_manifests_sampling(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    extra = (
        "sampling:\n  temperature: 0.7\n  top_p: 0.9\n  max_tokens: 64\n  extra: {top_k: 40}\n"
        "  stages:\n    division: {temperature: 0.2, max_tokens: 8}\n"
    )
    run = prepared_against(server, tmp_path, SENATE + extra, model="openai/test-model")
    asyncio.run(execute(run))
    recorded = turns(tmp_path / "run")
    assert len(server.bodies) == len(recorded) > 1
    for body, turn in zip(server.bodies, recorded, strict=True):
        assert body["seed"] == turn["seed"] == call_seed(0, *identity(turn))
        expected = (0.2, 8) if turn["stage"] == "division" else (0.7, 64)
        assert (body["temperature"], body["max_tokens"]) == expected
        assert (turn["temperature"], turn["max_tokens"]) == expected
        assert body["top_p"] == 0.9 and body["top_k"] == 40
    header = json.loads((tmp_path / "run" / "ledger.jsonl").read_text().splitlines()[0])
    assert header["body"]["config"]["sampling"]["temperature"] == 0.7


def test_the_readmes_sampling_examples_are_valid_manifest_sections(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    examples = [b for b in readme.split("```yaml\n")[1:] if b.startswith("sampling:")]
    assert len(examples) == 2
    write(tmp_path, "pyproject.toml", "")
    for example in examples:
        path = write(tmp_path, "senate.yaml", SENATE + example.split("```", 1)[0])
        assert spec_errors(path) == []


def test_a_run_mixing_real_and_simulated_models_is_labelled_partly_simulated(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811 - the fixture imported above
) -> None:
    """And each turn keeps its finish_reason; unparsed outputs are counted per call."""
    run = prepared_against(server, tmp_path, role_models={"consul": "openai/test-model"})
    summary = asyncio.run(execute(run))
    recorded = turns(tmp_path / "run")
    real = [t for t in recorded if t["model"] == "openai/test-model"]
    assert real and not summary.simulated
    assert summary.simulated_calls == round(1 - len(real) / len(recorded), 4) > 0
    assert summary.label and summary.label.startswith("PARTLY SIMULATED")
    assert {t["finish_reason"] for t in real} == {"stop"}
    assert summary.unparsed_turns == sum(not t["parsed"] for t in recorded)


# --- models without a system role ---------------------------------------------------------------


def test_merge_into_user_sends_the_system_prompt_inside_the_first_user_message(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811 - the fixture imported above
) -> None:
    text = SENATE.replace(
        "models:\n", "models:\n  system_prompt: {openai/gemma: merge_into_user}\n", 1
    )
    run = prepared_against(server, tmp_path, text, role_models={"consul": "openai/gemma"})
    asyncio.run(execute(run))
    body = server.bodies[0]
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["messages"][0]["content"].startswith("You are the Presiding consul")
    assert "## Task" in body["messages"][0]["content"]
    first = turns(tmp_path / "run")[0]
    assert first["messages"] == body["messages"]  # the record holds what the model was sent
    sim = next(t for t in turns(tmp_path / "run") if t["model"].startswith("sim/"))
    assert sim["messages"][0]["role"] == "system"  # only the named model is shaped
    header = json.loads((tmp_path / "run" / "ledger.jsonl").read_text().splitlines()[0])
    config = header["body"]["config"]
    assert config["api_base"] == server.url
    assert config["system_prompt"] == {"openai/gemma": "merge_into_user"}


def test_a_system_prompt_setting_for_a_model_no_role_uses_is_refused(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        "senate.yaml",
        SENATE.replace("models:\n", "models:\n  system_prompt: {sim/mediun: merge_into_user}\n"),
    )
    write(tmp_path, "pyproject.toml", "")
    with pytest.raises(SpecInvalid, match="names 'sim/mediun', which no role uses") as refused:
        prepare(RunRequest(manifest, limit=1, out=tmp_path / "run", data=SAMPLE))
    assert [(e.line, e.column) for e in refused.value.errors] == [(97, 19)]
    assert not (tmp_path / "run").exists()
    # on the command line: one FILE:LINE:COL: error: line, exit 1 (invalid input), no run
    done = run_cli("run", str(manifest), "--limit", "1", "--data", str(SAMPLE), cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("senate.yaml:97:19: error: ")


def test_the_readmes_system_prompt_example_is_a_valid_models_section() -> None:
    readme = (ROOT / "README.md").read_text()
    examples = [b.split("```", 1)[0] for b in readme.split("```yaml\n")[1:]]
    chosen = [
        ModelChoice.model_validate(yaml.safe_load(e)["models"]).system_prompt
        for e in examples
        if "system_prompt:" in e
    ]
    assert chosen and all(set(c.values()) == {"merge_into_user"} for c in chosen)


def test_without_max_tokens_each_kind_of_act_has_a_default_so_outputs_end(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811 - the fixture imported above
) -> None:
    run = prepared_against(server, tmp_path, model="openai/test-model", timeout=5.0, deadline=20.0)
    assert (run.context.router.timeout, run.context.router.deadline) == (5.0, 20.0)
    asyncio.run(execute(run))
    for body, turn in zip(server.bodies, turns(tmp_path / "run"), strict=True):
        assert body["max_tokens"] == turn["max_tokens"] == DEFAULT_MAX_TOKENS[turn["act"]]
    assert {t["act"] for t in turns(tmp_path / "run")} >= {"solve", "vote"}


def test_the_manifest_sets_the_calls_timeout_and_deadline(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "")
    text = SENATE.replace("models:\n", "models:\n  timeout: 7\n  deadline: 30\n", 1)
    manifest = write(tmp_path, "senate.yaml", text)
    run = prepare(RunRequest(manifest, limit=1, out=tmp_path / "run", data=SAMPLE))
    assert (run.context.router.timeout, run.context.router.deadline) == (7.0, 30.0)
    run.ledger.close("interrupted")


def test_a_call_that_fails_after_its_retries_is_counted_with_its_attempts(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811 - the fixture imported above
) -> None:
    server.script = [Reply(503, error("overloaded", "server_error"))] * 10
    write(tmp_path, "pyproject.toml", "")
    request = RunRequest(
        ROOT / "institutions" / "bare.yaml",
        task="gsm8k",
        limit=1,
        out=tmp_path / "run",
        data=SAMPLE,
        model="openai/test-model",
        api_base=server.url,
    )
    router = ModelRouter(api_base=server.url, max_retries=2, backoff_base=0.001, backoff_max=0.01)
    summary = asyncio.run(execute(prepare(request, router)))
    record = json.loads((tmp_path / "run" / "results.jsonl").read_text())
    assert record["outcome"] == "error" and len(server.raw) == 3
    assert (record["calls"], record["failed_attempts"]) == (1, 3)
    assert (summary.calls_per_item, summary.failed_attempts) == (1.0, 3)
    assert record["cost"] is None and summary.cost is None  # spent, at a price unknown


def test_each_failed_seat_of_a_body_is_counted_once(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811 - the fixture imported above
) -> None:
    server.script = [Reply(503, error("overloaded", "server_error"))] * 40
    write(tmp_path, "pyproject.toml", "")
    manifest = write(tmp_path, "senate.yaml", SENATE)
    request = RunRequest(
        manifest,
        limit=1,
        out=tmp_path / "run",
        data=SAMPLE,
        role_models={"senator": "openai/test-model"},
        api_base=server.url,
    )
    router = ModelRouter(api_base=server.url, max_retries=1, backoff_base=0.001, backoff_max=0.01)
    asyncio.run(execute(prepare(request, router)))
    record = json.loads((tmp_path / "run" / "results.jsonl").read_text())
    failed_seats = len(server.raw) // 2  # each failed seat made 2 attempts
    assert record["outcome"] == "error" and failed_seats >= 1
    assert record["failed_attempts"] == len(server.raw)
    assert record["calls"] == len(record["turns"]) + failed_seats


class Recorder(SimClient):
    """The simulator, keeping every request it is sent."""

    def __init__(self) -> None:
        super().__init__(PRESETS["medium"])
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        return await super().complete(request)


OVERSEEN_SENATE = TEST_SLATES_SENATE.replace(
    "  - {id: elder,",
    "  - {id: censor, title: Censor, instructions: Intervene only when it is wrong.}\n"
    "  - {id: elder,",
) + (
    "oversight:\n  - {role: censor, watches: [elect], rate: 1, interventions: {annul: nominate}}\n"
)


def test_ballots_among_candidates_and_oversight_have_their_own_default_max_tokens(
    tmp_path: Path,
) -> None:
    """An elector names candidates on a line or two, as a voter does; an overseer gives its
    reasons, as a reviewer does."""
    assert (DEFAULT_MAX_TOKENS["elect"], DEFAULT_MAX_TOKENS["oversee"]) == (256, 512)
    institution = checked_institution(load_checked(write(tmp_path, "senate.yaml", OVERSEEN_SENATE)))
    client = Recorder()
    state = run_item(institution, client, gold="7")
    sent = {(r.oracle.act, r.max_tokens) for r in client.requests}
    assert {act for act, _ in sent} >= {"solve", "elect", "oversee"}
    assert sent == {(act, DEFAULT_MAX_TOKENS[act]) for act, _ in sent}
    assert {(t["act"], t["max_tokens"]) for t in state["turns"]} == sent
