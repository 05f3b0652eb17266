"""govern against a real inference server: llama.cpp's server (llama-cpp-python) serving
SmolLM2-135M-Instruct (Q4_1) on the loopback interface, through a proxy that records what
govern sent, so the checks compare each run's records with the requests the server got.
A second server serves Gemma-3-270M (Q4_K_M), whose chat format has no system role, for a
run that sends each model to its own server (models.endpoints, one call at a time each).

Run by `make test-real`, which builds the server's venv once (outside the clone) and names
its python in GOVERN_REAL_PYTHON; `make test` never collects this folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, TEST_KEYS, clean_environment
from tests.real.llama_server import (
    GEMMA,
    MODEL,
    MODEL_ALIAS,
    N_CTX,
    PYTHON_ENV,
    LlamaServer,
    Recording,
    free_port,
    govern,
    gsm8k_data,
    llama_server,
    read_run,
    recording_proxy,
    server_python,
)

PYTHON = server_python()
if PYTHON is None:
    pytest.skip(
        f"{PYTHON_ENV} names no llama.cpp server venv: run `make test-real`",
        allow_module_level=True,
    )

ITEMS = 3
# The senate runs read outputs flexibly: a 135M model seldom writes the answer line, and under
# a stricter policy its motions can all be unparsable, so no debate is ever held to look at.
SAMPLING = {
    "temperature": 0.7,
    "top_p": 0.9,
    "max_tokens": 256,  # an answer; a 135M model that has not ended by then rambles on
    "stages": {"division": {"max_tokens": 64}, "intercession": {"max_tokens": 128}},
}
BARE_SAMPLING = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 256, "extra": {"top_k": 40}}
GREEDY = {"temperature": 0, "seed": "shared", "max_tokens": 128}


def environment() -> dict[str, str]:
    """A user with no API key, the test keys, and GSM8K's test split when this machine has
    it (else govern runs the project's sample, with a notice)."""
    data = gsm8k_data()
    return clean_environment(**TEST_KEYS, **({"GOVERN_GSM8K": str(data)} if data else {}))


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    assert PYTHON is not None
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with llama_server(PYTHON, log) as server:
        yield server


@pytest.fixture(scope="session")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A second server, with Gemma-3-270M (told its chat format: the GGUF holds none)."""
    assert PYTHON is not None
    log = tmp_path_factory.mktemp("gemma") / "server.log"
    with llama_server(PYTHON, log, GEMMA) as server:
        yield server


@pytest.fixture(scope="session")
def manifests() -> Iterator[Path]:
    """Derived manifests live inside the project (`extends` stays within it), in runs/."""
    (ROOT / "runs").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".real-", dir=ROOT / "runs"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def senate(folder: Path, name: str, sampling: dict, parsing: str = "tolerant") -> Path:
    """manifests/senate.yaml with this sampling and parsing."""
    base = Path("../..") / "manifests" / "senate.yaml"
    text = {"extends": str(base), "id": name, "parsing": parsing, "sampling": sampling}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False))
    return path


def bare(folder: Path, name: str, sampling: dict, parsing: str = "tolerant") -> Path:
    """The baseline institution (institutions/bare.yaml; no manifest ships for it)."""
    text = {
        "id": name,
        "institution": str(Path("../..") / "institutions" / "bare.yaml"),
        "task": {"name": "gsm8k"},
        "parsing": parsing,
        "sampling": sampling,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False))
    return path


@dataclass
class Run:
    manifest: Path
    folder: Path
    process: object  # subprocess.CompletedProcess[str]
    bodies: list[dict]  # every chat request the server was sent, in order
    summary: dict
    records: list[dict]

    @property
    def turns(self) -> list[dict]:
        return [{"item": r["id"], **t} for r in self.records for t in r["turns"]]


def run_govern(manifest: Path, out: Path, api_base: str, limit: int = ITEMS) -> list[str]:
    return [
        "run", str(manifest), "--task", "gsm8k", "--limit", str(limit),
        "--model", MODEL, "--api-base", api_base, "--concurrency", "1", "--out", str(out),
    ]  # fmt: skip


def real_run(llama: LlamaServer, manifest: Path, out: Path, limit: int = ITEMS) -> Run:
    with recording_proxy(llama.url) as proxy:
        process = govern(*run_govern(manifest, out, proxy.url, limit), env=environment())
        bodies = proxy.chat_bodies
    assert process.returncode == 0, process.stderr
    summary, records = read_run(out)
    return Run(manifest, out, process, bodies, summary, records)


@pytest.fixture(scope="module")
def bare_run(llama: LlamaServer, manifests: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    manifest = bare(manifests, "bare_real", BARE_SAMPLING)
    return real_run(llama, manifest, tmp_path_factory.mktemp("bare") / "run")


@pytest.fixture(scope="module")
def senate_run(
    llama: LlamaServer, manifests: Path, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    manifest = senate(manifests, "senate_real", SAMPLING, parsing="flexible")
    return real_run(llama, manifest, tmp_path_factory.mktemp("senate") / "run")


@pytest.fixture(scope="module")
def greedy_run(
    llama: LlamaServer, manifests: Path, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    manifest = senate(manifests, "senate_greedy", GREEDY, parsing="flexible")
    return real_run(llama, manifest, tmp_path_factory.mktemp("greedy") / "run", limit=1)


@pytest.fixture(params=["bare_run", "senate_run"])
def any_run(request: pytest.FixtureRequest) -> Run:
    return request.getfixturevalue(request.param)


def call_key(messages: list[dict], seed: int | None) -> str:
    return json.dumps([messages, seed], sort_keys=True)


def matched(run: Run) -> list[tuple[dict, dict]]:
    """Each turn with the request the server got for it (same messages, same seed)."""
    waiting: dict[str, list[dict]] = {}
    for body in run.bodies:
        waiting.setdefault(call_key(body["messages"], body.get("seed")), []).append(body)
    pairs = []
    for turn in run.turns:
        sent = waiting.get(call_key(turn["messages"], turn["seed"]))
        assert sent, f"no request for turn {turn['stage']} {turn['agent']} of {turn['item']}"
        pairs.append((turn, sent.pop(0)))
    return pairs


def seat_groups(run: Run, stage: str | None = None) -> dict[tuple, list[dict]]:
    """Senators' turns by (item, stage, visit): the seats of one body asked at once."""
    groups: dict[tuple, list[dict]] = {}
    for turn in run.turns:
        if turn["agent"].startswith("senator#") and stage in (None, turn["stage"]):
            groups.setdefault((turn["item"], turn["stage"], turn["visit"]), []).append(turn)
    return groups


def same_prompt(group: list[dict]) -> bool:
    return len({json.dumps(t["messages"], sort_keys=True) for t in group}) == 1


# --- (a) what was asked and answered is on record ----------------------------------------------


def test_a_real_run_is_labelled_real_and_scores_every_item(any_run: Run) -> None:
    summary = any_run.summary
    assert summary["simulated"] is False and summary["label"] is None
    assert summary["simulated_calls"] == 0
    assert summary["complete"] is True and summary["n"] == ITEMS
    assert summary["failures"] == {} and "error" not in summary["outcomes"]
    assert set(summary["models"].values()) == {MODEL}
    assert f"results in {any_run.folder}" in " ".join(any_run.process.stdout.split())
    if gsm8k_data() is not None:
        assert summary["benchmark"] is True


def test_every_turn_holds_its_prompt_and_output_and_every_call_reached_the_server(
    any_run: Run,
) -> None:
    turns = any_run.turns
    assert turns
    for turn in turns:
        roles = [m["role"] for m in turn["messages"]]
        assert roles == ["system", "user"], turn
        assert all(m["content"].strip() for m in turn["messages"])
        assert isinstance(turn["text"], str) and turn["text"].strip(), turn
        assert turn["finish_reason"] in ("stop", "length"), turn
        assert turn["prompt_tokens"] > 0 and turn["completion_tokens"] > 0
        assert turn["model"] == MODEL
    attempts = sum(t["attempts"] for t in turns)
    failed = sum(r.get("failed_attempts", 0) for r in any_run.records)
    assert len(any_run.bodies) == attempts + failed
    for turn, body in matched(any_run):
        assert body["messages"] == turn["messages"]  # the record holds what the server got
        assert body["model"] == MODEL_ALIAS
    for record in any_run.records:  # no call failed, so each call is a turn
        assert record["calls"] == len(record["turns"])
    assert any_run.summary["unparsed_turns"] == sum(not t["parsed"] for t in turns)


# --- (c) sampling as configured -----------------------------------------------------------------


def expected_sampling(stage: str) -> dict:
    return {
        **{k: v for k, v in SAMPLING.items() if k != "stages"},
        **SAMPLING["stages"].get(stage, {}),
    }


def test_the_server_is_sent_the_manifests_sampling_and_each_calls_own_seed(
    senate_run: Run,
) -> None:
    for turn, body in matched(senate_run):
        want = expected_sampling(turn["stage"])
        for name in ("temperature", "top_p", "max_tokens"):
            assert body[name] == turn[name] == want[name], (name, turn["stage"])
        assert body["seed"] == turn["seed"]
        assert turn["completion_tokens"] <= want["max_tokens"]  # the server kept to it
        if turn["finish_reason"] == "length":
            assert turn["completion_tokens"] == want["max_tokens"]
    assert not any("top_k" in b for b in senate_run.bodies)  # only what was configured
    seeds = [b["seed"] for b in senate_run.bodies]
    assert len(set(seeds)) == len(seeds)  # every call, every seat its own seed
    groups = seat_groups(senate_run)
    assert groups
    for group in groups.values():
        assert len(group) == 5 and len({t["seed"] for t in group}) == 5


def test_the_baselines_calls_carry_its_sampling(bare_run: Run) -> None:
    for turn, body in matched(bare_run):
        for name in ("temperature", "top_p", "max_tokens"):
            assert body[name] == turn[name] == BARE_SAMPLING[name]
        assert body["top_k"] == 40 and turn["extra"] == {"top_k": 40}  # passed through
        assert body["seed"] == turn["seed"] is not None


# --- (b) the seats are distinct -----------------------------------------------------------------


def test_five_senators_asked_the_same_question_do_not_all_answer_alike(senate_run: Run) -> None:
    debates = [g for g in seat_groups(senate_run, "debate").values() if same_prompt(g)]
    assert debates, "no debate in which the five senators got the same prompt"
    for group in debates:
        assert len(group) == 5
        assert len({t["text"] for t in group}) >= 2, [t["text"] for t in group]


def test_at_temperature_0_with_a_shared_seed_five_seats_give_one_answer(greedy_run: Run) -> None:
    """One opinion counted five times, up to llama.cpp's prompt cache: the first seat's
    prompt is evaluated in a batch, the next four reuse its cache and evaluate only its
    last token again, alone; those numerics differ slightly, which can flip a near-tie token
    of a greedy output (seen: a ballot quoting ' where the others wrote ’). The four seats
    served from the same cache agree. (The five requests are alike, seed included, so which
    seat went first cannot be told from them.)"""
    assert {b["seed"] for b in greedy_run.bodies} == {0}  # the run's seed, sent with every call
    assert {b["temperature"] for b in greedy_run.bodies} == {0}
    groups = [g for g in seat_groups(greedy_run).values() if same_prompt(g)]
    assert any(g[0]["stage"] == "debate" for g in groups)
    for group in groups:
        assert len(group) == 5
        texts = Counter(t["text"] for t in group)
        assert texts.most_common(1)[0][1] >= 4, (group[0]["stage"], list(texts))


# --- (e) the ledger -----------------------------------------------------------------------------


def test_the_ledger_of_a_real_run_verifies(any_run: Run) -> None:
    checked = govern("audit", str(any_run.folder), env=environment())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    header = json.loads((any_run.folder / "ledger.jsonl").read_text().splitlines()[0])
    assert header["body"]["config"]["api_base"].startswith("http://127.0.0.1:")
    entries = [json.loads(line) for line in (any_run.folder / "ledger.jsonl").open()]
    logged = Counter(e["body"]["seed"] for e in entries if e["kind"] == "turn")
    assert logged == Counter(t["seed"] for t in any_run.turns)


# --- (d) failures are visible -------------------------------------------------------------------


def test_a_server_that_is_not_listening_is_reported_on_the_console(
    manifests: Path, tmp_path: Path
) -> None:
    manifest = bare(manifests, "bare_nowhere", BARE_SAMPLING)
    closed = f"http://127.0.0.1:{free_port()}/v1"  # bound, then released: nothing listens
    process = govern(*run_govern(manifest, tmp_path / "run", closed, limit=1), env=environment())
    assert process.returncode == 1, process.stdout + process.stderr
    assert "failures: 1 of 1 items failed:" in process.stderr
    assert f"{MODEL}: connection failed: refused after 4 attempts" in process.stderr
    assert "govern: every item failed (1 of 1): nothing was scored" in process.stderr
    summary, (record,) = read_run(tmp_path / "run")
    assert record["outcome"] == "error" and record["failed_attempts"] == 4
    assert summary["failures"] == {f"{MODEL}: connection failed: refused after 4 attempts": 1}


def test_a_prompt_longer_than_the_servers_context_is_reported_at_once(
    llama: LlamaServer, manifests: Path, tmp_path: Path
) -> None:
    manifest = bare(manifests, "bare_too_long", BARE_SAMPLING)
    question = "A farmer counts his sheep again and again. " * 400  # about 4,000 tokens
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"question": question + "How many?", "answer": "#### 1"}) + "\n")
    with recording_proxy(llama.url) as proxy:
        args = [*run_govern(manifest, tmp_path / "run", proxy.url, limit=1), "--data", str(data)]
        process = govern(*args, env=environment())
        sent = proxy.chat_bodies
    assert process.returncode == 1, process.stdout + process.stderr
    assert len(sent) == 1  # a bad request is not retried
    assert f"{MODEL}: request rejected (HTTP 400): " in process.stderr
    assert f"context window of {N_CTX}" in process.stderr or "context length" in process.stderr
    assert "govern: every item failed (1 of 1): nothing was scored" in process.stderr


def test_a_server_that_answers_500_is_reported_on_the_console(
    llama: LlamaServer, manifests: Path, tmp_path: Path
) -> None:
    manifest = bare(manifests, "bare_failing", BARE_SAMPLING)
    with recording_proxy(llama.url, fail_status=500) as proxy:
        args = run_govern(manifest, tmp_path / "run", proxy.url, limit=1)
        process = govern(*args, env=environment())
        sent = proxy.chat_bodies
    assert process.returncode == 1, process.stdout + process.stderr
    assert f"{MODEL}: server error (HTTP 500) after 4 attempts" in process.stderr
    assert "govern: every item failed (1 of 1): nothing was scored" in process.stderr
    _, (record,) = read_run(tmp_path / "run")
    assert len(sent) == record["failed_attempts"] == 4  # the first try and three retries
    assert record["calls"] == 1 and record["turns"] == []


# --- (f) two servers: SmolLM2 for the consul and the tribune, Gemma for the senators ----------

MIXED_ITEMS = 2  # two items at once, so two consuls could reach the first server together
MIXED_SAMPLING = {
    "temperature": 0.7,
    "top_p": 0.9,
    "max_tokens": 96,  # Gemma-3-270M here seldom ends an answer of its own accord
    "stages": {"division": {"max_tokens": 32}},
}
SENATOR_SYSTEM = "You are the Senator in Senate of the Roman Republic"


@dataclass
class MixedRun:
    run: Run
    smollm2: Recording  # what the first server's proxy saw
    gemma: Recording  # and the second's


def mixed_senate(folder: Path, name: str, smollm2_url: str, gemma_url: str) -> Path:
    """The senate with its senators on Gemma, each model on its own single-slot server."""
    models = {
        "default": MODEL,
        "roles": {"consul": MODEL, "tribune": MODEL, "senator": GEMMA.model},
        "endpoints": {
            MODEL: {"api_base": smollm2_url, "concurrency": 1},
            GEMMA.model: {"api_base": gemma_url, "concurrency": 1},
        },
        "system_prompt": {GEMMA.model: "merge_into_user"},
    }
    base = Path("../..") / "manifests" / "senate.yaml"
    text = {
        "extends": str(base),
        "id": name,
        "parsing": "flexible",
        "sampling": MIXED_SAMPLING,
        "models": models,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def mixed_run(
    llama: LlamaServer,
    gemma: LlamaServer,
    manifests: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> MixedRun:
    out = tmp_path_factory.mktemp("mixed") / "run"
    with recording_proxy(llama.url) as first, recording_proxy(gemma.url) as second:
        manifest = mixed_senate(manifests, "senate_mixed", first.url, second.url)
        process = govern(
            "run", str(manifest), "--task", "gsm8k", "--limit", str(MIXED_ITEMS),
            "--concurrency", "4", "--out", str(out),
            env=environment(),
        )  # fmt: skip
    assert process.returncode == 0, process.stderr
    summary, records = read_run(out)
    bodies = first.chat_bodies + second.chat_bodies
    return MixedRun(Run(manifest, out, process, bodies, summary, records), first, second)


def test_each_server_gets_only_its_own_models_calls_one_at_a_time(mixed_run: MixedRun) -> None:
    first, second = mixed_run.smollm2.chat_bodies, mixed_run.gemma.chat_bodies
    assert first and second
    assert {b["model"] for b in first} == {MODEL_ALIAS}
    assert {b["model"] for b in second} == {GEMMA.alias}
    # --concurrency 4 would let two items' consuls, or five senators, go out together: each
    # endpoint's `concurrency: 1` held them back in govern.
    assert mixed_run.smollm2.max_in_flight == 1
    assert mixed_run.gemma.max_in_flight == 1


def test_gemma_is_sent_the_system_prompt_in_the_first_user_message(mixed_run: MixedRun) -> None:
    for body in mixed_run.gemma.chat_bodies:
        roles = [m["role"] for m in body["messages"]]
        assert "system" not in roles and roles[0] == "user", roles
        first = body["messages"][0]["content"]
        assert first.startswith(SENATOR_SYSTEM), first[:200]
        assert "\n\n## Task\n" in first  # the user's prompt follows the system text
    for body in mixed_run.smollm2.chat_bodies:  # SmolLM2 keeps its own system message
        system, user = body["messages"][:2]
        assert system["role"] == "system" and system["content"].startswith("You are the ")
        assert user["role"] == "user" and user["content"].startswith("## Task\n")


def test_every_turn_of_the_two_server_run_is_recorded_and_matches_a_request(
    mixed_run: MixedRun,
) -> None:
    run = mixed_run.run
    summary = run.summary
    assert summary["simulated"] is False and summary["simulated_calls"] == 0
    assert summary["complete"] is True and summary["n"] == MIXED_ITEMS
    assert summary["failures"] == {} and "error" not in summary["outcomes"]
    assert summary["models"] == {"consul": MODEL, "senator": GEMMA.model, "tribune": MODEL}
    turns = run.turns
    assert {t["agent"].split("#")[0] for t in turns} >= {"consul", "senator"}
    attempts = sum(t["attempts"] for t in turns)
    failed = sum(r.get("failed_attempts", 0) for r in run.records)
    assert len(run.bodies) == attempts + failed
    for turn, body in matched(run):
        senator = turn["agent"].startswith("senator#")
        assert turn["model"] == (GEMMA.model if senator else MODEL)
        assert body["model"] == (GEMMA.alias if senator else MODEL_ALIAS)
        assert body["messages"] == turn["messages"]
        assert isinstance(turn["text"], str) and turn["text"].strip(), turn
        assert turn["prompt_tokens"] > 0 and turn["completion_tokens"] > 0
        assert turn["completion_tokens"] <= body["max_tokens"]


def test_the_two_server_runs_ledger_verifies_and_records_the_endpoints(
    mixed_run: MixedRun,
) -> None:
    run = mixed_run.run
    checked = govern("audit", str(run.folder), env=environment())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    entries = [json.loads(line) for line in (run.folder / "ledger.jsonl").open()]
    config = entries[0]["body"]["config"]
    assert config["endpoints"] == {
        MODEL: {"api_base": mixed_run.smollm2.url, "concurrency": 1},
        GEMMA.model: {"api_base": mixed_run.gemma.url, "concurrency": 1},
    }
    assert config["system_prompt"] == {GEMMA.model: "merge_into_user"}
    assert config["api_base"] is None  # no run-wide server: each model has its own
    logged = Counter(e["body"]["seed"] for e in entries if e["kind"] == "turn")
    assert logged == Counter(t["seed"] for t in run.turns)
