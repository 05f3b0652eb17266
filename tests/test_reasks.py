"""Re-asks that quote the format, per-sample sampling, what reviewers and voters are shown, and
outputs cut by max_tokens: each against the loopback server, as a real model would see it."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from govern.engine.formats import VOTE_FORMAT, parse_ballot, parse_decision, review_format
from govern.engine.prompts import as_report
from govern.ledger.audit import audit
from govern.run.runner import execute
from govern.spec.models import SamplingPolicy
from govern.tasks.gsm8k import GSM8K
from tests.conftest import ROOT, spec_errors, write
from tests.test_litellm_client import (  # the loopback server and its replies
    USAGE,
    FakeServer,
    Reply,
    completion,
    error,
    server,  # noqa: F401
)
from tests.test_sampling import SENATE, prepared_against, turns

# the shipped bare institution, copied beside the manifest
BARE = "id: bare\ninstitution: bare.yaml\ntask: {name: gsm8k}\n"
UNPARSABLE = "I think it is eighteen, more or less."


def replies(*texts: str) -> list[Reply]:
    return [Reply(body=completion(text)) for text in texts]


def run(loopback: FakeServer, folder: Path, text: str, script: list[Reply]) -> dict:
    write(folder, "bare.yaml", (ROOT / "institutions" / "bare.yaml").read_text())
    prepared = prepared_against(loopback, folder, text, model="openai/test-model")
    loopback.script = list(script)
    asyncio.run(execute(prepared))
    return json.loads((folder / "run" / "results.jsonl").read_text().splitlines()[0])


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "run" / "summary.json").read_text())


def test_an_unparsable_answer_is_asked_again_quoting_the_format_and_counted(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811 - the fixture imported above
) -> None:
    text = BARE + "parsing: {mode: strict, reasks: 2}\n"
    result = run(server, tmp_path, text, replies(UNPARSABLE, "#### 18"))
    first, again = result["turns"]
    assert (first["parsed"], again["parsed"], again["reask"]) == (False, True, 1)
    assert "reask" not in first and result["prediction_strict"] == "18"
    # the re-ask is the first conversation, the reply, and a message saying what was missing
    assert again["messages"][:-2] == first["messages"]
    assert again["messages"][-2] == {"role": "assistant", "content": UNPARSABLE}
    reask = again["messages"][-1]
    assert reask["role"] == "user" and "`#### <number>`" in reask["content"]
    assert reask["content"].endswith("Reply again, ending with that line.")
    assert first["seed"] != again["seed"]  # else a seeded server repeats the same text
    assert [b["seed"] for b in server.bodies] == [first["seed"], again["seed"]]
    assert (result["calls"], result["reasks"]) == (2, 1)
    summary = summary_of(tmp_path)
    assert (summary["reasks"], summary["reasks_answered"], summary["unparsed_turns"]) == (1, 1, 1)
    ledger = [
        json.loads(line) for line in (tmp_path / "run" / "ledger.jsonl").read_text().splitlines()
    ]
    turn_entries = [e["body"] for e in ledger if e["kind"] == "turn"]
    assert [t.get("reask", 0) for t in turn_entries] == [0, 1]
    assert [t["parsed"] for t in turn_entries] == [False, True]
    assert audit(tmp_path / "run").intact


def test_re_asks_stop_at_the_policys_bound_and_the_stage_decides_unparsable(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
) -> None:
    text = BARE + "parsing: {mode: strict, reasks: 2}\n"
    result = run(server, tmp_path, text, replies(*[UNPARSABLE] * 6))
    # two visits of solve (the bare baseline's retry), each asked once and re-asked twice
    assert [t.get("reask", 0) for t in result["turns"]] == [0, 1, 2, 0, 1, 2]
    assert result["calls"] == len(server.bodies) == 6
    assert result["outcome"] == "no_answer" and result["reasks"] == 4
    assert result["unparsable"] == 2  # the stage decisions, once per visit


def test_without_re_asks_an_unparsable_output_is_asked_once(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
) -> None:
    result = run(server, tmp_path, BARE, replies(UNPARSABLE, UNPARSABLE))
    assert result["calls"] == 2 and result["reasks"] == 0  # the institution's own retry
    assert all("reask" not in t for t in result["turns"])


def test_a_re_ask_that_fails_leaves_the_unparsable_reply_and_counts_the_failed_call(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
) -> None:
    refused = Reply(400, error("context length exceeded", "invalid_request_error"))
    text = BARE + "parsing: {mode: strict, reasks: 1}\n"
    result = run(server, tmp_path, text, [*replies(UNPARSABLE), refused, *replies("#### 18")])
    first, second = result["turns"]
    assert "context length exceeded" in first["reask_error"] and "reask" not in second
    assert result["calls"] == 3 and result["failed_attempts"] == 1 and result["reasks"] == 1
    assert result["prediction_strict"] == "18"


def test_a_ballot_re_asked_for_its_format_counts_in_the_division(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
) -> None:
    text = (
        SENATE.replace("sim/medium", "openai/test-model") + "parsing: {mode: tolerant, reasks: 1}\n"
    )
    motion, opinions = replies("It is 18.\n#### 18"), replies(*["Sound.\n#### 18"] * 5)
    ballots = replies("I vote for it.", *["VOTE: yes"] * 5)  # one seat needs a re-ask
    tail = replies("DECISION: approve", "Enacted.\n#### 18")
    result = run(server, tmp_path, text, motion + opinions + ballots + tail)
    division = [t for t in result["turns"] if t["stage"] == "division"]
    reasked = [t for t in division if t.get("reask")]
    assert len(division) == 6 and len(reasked) == 1
    assert reasked[0]["ballot"] == "yes" and reasked[0]["seat"] == reasked[0]["agent"]
    assert "`VOTE: yes` or `VOTE: no`" in reasked[0]["messages"][-1]["content"]
    assert result["outcome"] == "completed" and result["reasks"] == 1


def test_the_simulator_answers_a_re_ask_with_the_same_answer_formatted_afresh(
    tmp_path: Path,
) -> None:
    from tests.test_sampling import run_senate

    extra = "simulator: {sim/medium: {malformed_rate: 0.5}}\nparsing: {mode: strict, reasks: 1}\n"
    out = run_senate(tmp_path, extra=extra, limit=6)
    recorded = turns(out)
    pairs = [
        (before, after)
        for before, after in itertools.pairwise(recorded)
        if after.get("reask") and before["agent"] == after["agent"]
    ]
    assert pairs and any(after["parsed"] for _, after in pairs)
    assert not any(before["parsed"] for before, _ in pairs)
    again = turns(run_senate(tmp_path / "again", extra=extra, limit=6))
    assert [t["text"] for t in again] == [t["text"] for t in recorded]  # reproducible


# --- per-sample sampling --------------------------------------------------------------------


def test_a_voting_stage_samples_its_first_seat_at_temperature_0_and_the_rest_at_0_1(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
) -> None:
    text = SENATE.replace("sim/medium", "openai/test-model") + (
        "sampling:\n  temperature: 0.7\n  stages:\n"
        "    division: {max_tokens: 32, samples: [{temperature: 0}, {temperature: 0.1}]}\n"
    )
    script = replies("It is 18.\n#### 18", *["Sound.\n#### 18"] * 5, *["VOTE: yes"] * 5)
    run(server, tmp_path, text, script + replies("DECISION: approve", "#### 18"))
    division = [b for b in server.bodies if "VOTE:" in b["messages"][-1]["content"]]
    assert sorted(b["temperature"] for b in division) == [0, 0.1, 0.1, 0.1, 0.1]
    assert {b["max_tokens"] for b in division} == {32}
    others = [b for b in server.bodies if b not in division]
    assert {b["temperature"] for b in others} == {0.7}
    recorded = [t for t in turns(tmp_path / "run") if t["stage"] == "division"]
    assert sorted((t.get("sample", 0), t["temperature"]) for t in recorded) == [
        (0, 0), (1, 0.1), (2, 0.1), (3, 0.1), (4, 0.1)
    ]  # fmt: skip


def test_samples_past_the_list_take_its_last_entry() -> None:
    policy = SamplingPolicy.model_validate(
        {"top_p": 0.9, "stages": {"vote": {"temperature": 1.0, "samples": [{"temperature": 0}]}}}
    )
    assert [policy.for_call("r", "vote", i).temperature for i in range(3)] == [0, 0, 0]
    assert policy.for_call("r", "vote", 2).top_p == 0.9
    assert policy.for_call("r", "other", 0).temperature is None


# --- what a reviewer or voter is shown -------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("#### 18", "(answer stated: 18)"),
        ("**#### $18**", "(answer stated: 18)"),
        ("### 2. Add the two sums", "### 2. Add the two sums"),  # a heading, not an answer
        ("The answer is 18.", "The answer is 18."),
        ("VOTE: yes", "(vote cast: yes)"),
        ("### **VOTE: no**", "(vote cast: no)"),
        ("DECISION: approve", "(decision given: approve)"),
        ("### senator#2", "### senator#2"),  # a report's heading stays
    ],
)
def test_reports_restate_their_answer_and_ballot_lines_in_words(line: str, shown: str) -> None:
    assert as_report(f"Working.\n{line}", GSM8K()) == f"Working.\n{shown}"


def test_every_prompt_ends_with_its_format_and_a_one_line_example() -> None:
    answer = GSM8K().answer_format
    review = review_format(("approve", "reject"), answer)
    for output_format in (VOTE_FORMAT, review):
        last = output_format.prompt().splitlines()[-1]
        assert last.startswith("For example, ") and last.endswith(f": {output_format.example}")
        assert "\n" not in output_format.example
    # an answer's format gives the form alone: a small model copies an example's number
    assert answer.example is None and answer.prompt() == answer.instruction
    assert answer.instruction.endswith("on a last line of the form `#### <number>`.")
    assert parse_ballot(VOTE_FORMAT.example) == "yes"
    assert parse_decision(review.example, ("approve", "reject")) == "approve"


def test_a_re_ask_names_what_was_missing() -> None:
    answer = GSM8K().answer_format
    review = review_format(("approve", "amend", "reject"), answer)
    no_decision = review.reask("Looks fine to me.")
    assert "`DECISION: <word>` (one of: approve, amend, reject)" in no_decision
    no_answer = review.reask("It should be 20.\nDECISION: amend")  # an amendment, no answer
    assert "amendment had no line of the form `#### <number>`" in no_answer
    assert "DECISION: <word>" not in no_answer


# --- outputs cut by max_tokens ---------------------------------------------------------------


def test_a_run_on_output_cut_by_max_tokens_is_recorded_with_its_tokens(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
) -> None:
    cut = completion("Let me double-check once more. " * 40)
    cut["choices"][0]["finish_reason"] = "length"
    cut["usage"] = {"prompt_tokens": 90, "completion_tokens": 256, "total_tokens": 346}
    result = run(server, tmp_path, BARE, [Reply(body=cut), *replies("#### 18")])
    first, second = result["turns"]
    assert (first["finish_reason"], first["completion_tokens"], first["parsed"]) == (
        "length",
        256,
        False,
    )
    assert first["max_tokens"] == server.bodies[0]["max_tokens"] == 1024
    assert result["completion_tokens"] == 256 + USAGE["completion_tokens"]
    assert result["prompt_tokens"] == 90 + USAGE["prompt_tokens"]
    assert result["calls"] == 2 and second["finish_reason"] == "stop"


# --- re-asks under governance and budgets ------------------------------------------------------


def test_only_the_reply_a_consultation_ends_on_is_evidence_for_the_controller(
    tmp_path: Path,
) -> None:
    """A sloppy clerk re-asked four times in one visit is judged once per visit, not on a
    streak made of its own re-asks; every reply is still in the ledger."""
    from tests.test_sampling import run_senate

    governed = (ROOT / "manifests" / "chancery_governed.yaml").read_text()
    text = governed.replace("malformed_rate: 0.3", "malformed_rate: 1.0")
    out = run_senate(tmp_path, extra="parsing: {mode: strict, reasks: 4}\n", limit=1, text=text)
    ledger = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    clerk = [e for e in ledger if e["kind"] == "turn" and e["actor"] == "clerk#1"]
    assert [t["body"].get("reask", 0) for t in clerk] == [0, 1, 2, 3, 4] * 3  # three visits
    states = [e for e in ledger if e["kind"] == "state"]
    # the rules (a warning at 2 unparsable in a row, a suspension at 3) count deliveries:
    # warned after the second visit's replies, suspended after the third's
    assert [s["body"]["to"] for s in states] == ["warned", "suspended"]
    assert clerk[9]["seq"] < states[0]["seq"] < clerk[10]["seq"]
    assert clerk[14]["seq"] < states[1]["seq"]


def test_re_asks_stop_where_the_items_call_budget_would_be_passed(tmp_path: Path) -> None:
    from tests.test_sampling import run_senate

    extra = (
        "simulator: {sim/medium: {malformed_rate: 1.0}}\nparsing: {mode: strict, reasks: 5}\n"
        "budgets: {max_calls_per_item: 3}\n"
    )
    bare = (ROOT / "institutions" / "bare.yaml").read_text()
    write(tmp_path, "bare.yaml", bare)
    text = BARE + "models: {default: sim/medium}\n"
    out = run_senate(tmp_path, extra=extra, limit=2, text=text)
    for line in (out / "results.jsonl").read_text().splitlines():
        result = json.loads(line)
        assert result["calls"] == 3 and result["outcome"] == "cut_off"


# --- the manifest's word for all this, checked where it is written -----------------------------

SENATE_LINES = len(SENATE.splitlines())


@pytest.mark.parametrize(
    ("section", "message", "line", "column"),
    [
        ("parsing:\n  mode: tolerant\n  reasks: 9\n", "less than or equal to 5", 3, 11),
        ("parsing: {mode: tolerant, reasks: -1}\n", "greater than or equal to 0", 1, 35),
        ("parsing: {reasks: true}\n", "valid integer", 1, 19),
        ("parsing: bogus\n", "'bogus' is not allowed for 'mode'", 1, 10),
        ("parsing: [tolerant]\n", "'parsing' should be a mapping of keys, not a list", 1, 10),
        ("parsing: {mode: strict, reask: 1}\n", "allowed keys: mode, reasks", 1, 25),
        (
            "sampling:\n  stages:\n    motion: {samples: [{temperature: 0}]}\n",
            "stage 'motion' is a propose stage, asked once: samples are for stages",
            3,
            14,
        ),
        (
            "sampling:\n  stages:\n    division: {samples: [{temp: 0}]}\n",
            "unknown key 'temp'",
            3,
            27,
        ),
    ],
)
def test_a_wrong_parsing_or_samples_key_is_one_error_at_its_place(
    tmp_path: Path, section: str, message: str, line: int, column: int
) -> None:
    write(tmp_path, "pyproject.toml", "")
    errors = spec_errors(write(tmp_path, "senate.yaml", SENATE + section))
    assert len(errors) == 1, errors
    assert message in errors[0].message
    assert (errors[0].line, errors[0].column) == (SENATE_LINES + line, column)


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/v1", " http://x/v1", "http:///v1"])
def test_a_server_url_that_is_no_http_url_is_refused_before_any_call(
    tmp_path: Path, url: str
) -> None:
    write(tmp_path, "pyproject.toml", "")
    section = f"  endpoints:\n    sim/medium: {{api_base: '{url}'}}\n"
    text = SENATE.replace("  default: sim/medium\n", f"  default: sim/medium\n{section}")
    errors = spec_errors(write(tmp_path, "senate.yaml", text))
    assert len(errors) == 1 and "is not a server's base URL" in errors[0].message, errors


def test_a_failed_re_ask_is_in_the_ledger(
    tmp_path: Path,
    server: FakeServer,  # noqa: F811
) -> None:
    refused = Reply(400, error("context length exceeded", "invalid_request_error"))
    text = BARE + "parsing: {mode: strict, reasks: 1}\n"
    run(server, tmp_path, text, [*replies(UNPARSABLE), refused, *replies("#### 18")])
    ledger = [
        json.loads(line) for line in (tmp_path / "run" / "ledger.jsonl").read_text().splitlines()
    ]
    failed = [e for e in ledger if e["kind"] == "call_failed"]
    assert len(failed) == 1 and failed[0]["body"]["reask"] == 1
    assert "context length exceeded" in failed[0]["body"]["error"]
    assert audit(tmp_path / "run").intact
