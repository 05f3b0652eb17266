"""The second edition's constructs on a real model: `govern run` through litellm against a
loopback OpenAI-compatible server that reads each prompt as a model would and answers it
from a script (a nominee with `#### N`, an elector with `VOTE: 2` or `VOTE: 1, 3`, a citizen
with `VOTE: abstain`, a tribune with a vetoing `VOTE: no`, the censor with `DECISION: uphold`
or an intervention, the court with its own `DECISION: annul`).

What the simulator is given and a real model is not (the gold answer, the Oracle) must never
reach the server; a failing call must show on the console and in the item's record; each seat
must be asked on its own model. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from govern.models.litellm_client import LiteLLMClient
from govern.tasks.gsm8k import SAMPLE
from tests.conftest import TEST_KEYS, write
from tests.fault_server import FaultServer

MODEL = "openai/republic-model"
ITEMS = [json.loads(line) for line in SAMPLE.read_text().splitlines()[:3]]
QUESTIONS = [item["question"] for item in ITEMS]
WORKINGS = [item["answer"].split("####")[0].strip() for item in ITEMS]  # the gold's working
GOLDS = [item["answer"].split("####")[-1].strip() for item in ITEMS]

# The README's small republic, made small: three citizens, a two-item magistracy, two
# tribunes who may veto, a court with its own words and a censor overseeing every decision.
REPUBLIC = """\
id: small_republic
name: A small republic
era: anywhere, any time
pattern: consensus
history: >
  Citizens drawn by lot stand for magistrate and elect one among them, who holds the office
  for two items. The magistrate proposes; the citizens and the tribunes vote, and either
  tribune may veto; a judge may strike the law down; a censor watches the vote and the court.
roles:
  - id: citizen
    title: Citizen
    seats: 3
    instructions: Vote for a proposal only if you are convinced its answer is right.
  - id: magistrate
    title: Magistrate
    office: {term: 2}
    instructions: Put a complete, worked answer to the assembly.
  - id: tribune
    title: Tribune of the plebs
    seats: 2
    instructions: Vote no on any proposal whose answer you find wrong.
  - id: judge
    title: Judge
    instructions: Let a sound law stand; annul an unlawful one; refer a doubtful one back.
  - id: censor
    title: Censor
    instructions: Intervene only when a decision is plainly wrong.
entry: office_check
stages:
  - id: office_check
    kind: office
    office: magistrate
    purpose: Is there a magistrate in office?
    next: {held: proposal, vacant: sortition}
  - id: sortition
    kind: lot
    pool: [citizen]
    draw: 3
    purpose: Draw three citizens to stand for magistrate.
    next: {done: candidacy}
  - id: candidacy
    kind: nominate
    nominees: {chosen_by: sortition}
    purpose: Stand for magistrate with your own worked answer.
    next: {done: election, unparsable: lapsed}
  - id: election
    kind: vote
    voters: {chosen_by: sortition}
    rule: approval
    slate: candidacy
    choose: 1
    min_yes: 2
    tie_breaker: pass
    fills: magistrate
    purpose: Elect the magistrate from the slate.
    next: {pass: proposal, fail: lapsed, unparsable: lapsed}
  - id: proposal
    kind: propose
    role: magistrate
    purpose: Put a law with a worked answer to the assembly.
    next: {done: assembly, unparsable: lapsed}
  - id: assembly
    kind: vote
    voters: [citizen, tribune]
    rule: supermajority
    threshold: 2/3
    min_yes: 3
    abstain: true
    quorum: 1/2
    veto_by: [tribune]
    purpose: Vote on the magistrate's law.
    next:
      pass: court
      fail: {to: proposal, max_visits: 2, exhausted: lapsed}
      no_quorum: {to: proposal, max_visits: 2, exhausted: lapsed}
      vetoed: vetoed
      unparsable: lapsed
  - id: court
    kind: review
    role: judge
    decisions: [approve, annul, refer]
    means: {annul: veto, refer: reject}
    purpose: Judge whether the law stands.
    next:
      approve: enacted
      annul: struck_down
      refer: {to: proposal, max_visits: 1, exhausted: struck_down}
      unparsable: enacted
  - id: enacted
    kind: terminal
  - id: vetoed
    kind: terminal
    outcome: rejected
  - id: struck_down
    kind: terminal
    outcome: rejected
  - id: lapsed
    kind: terminal
    outcome: rejected
oversight:
  - role: censor
    watches: [assembly, court]
    rate: 1
    interventions: {remand: proposal, quash: struck_down}
    max_interventions: 1
"""

ELECTED = ["office_check", "sortition", "candidacy", "election", "proposal", "assembly", "court"]
HELD = ["office_check", "proposal", "assembly", "court"]
# What a plain chat completion may carry: nothing of the simulator's hidden context.
PLAIN_FIELDS = {"model", "messages", "temperature", "seed", "max_tokens"}
_CANDIDATE = re.compile(r"^### Candidate (\d+): (\S+), answer", re.MULTILINE)


# --- the server and the model it plays -----------------------------------------------------


class PromptServer(FaultServer):
    """A loopback server whose reply to each request is chosen from the request itself:
    ``fault(body)`` names a fault mode of ``FaultServer`` (``ok`` for a completion whose text
    is ``answer(body)``)."""

    def __init__(self, answer: Callable[[dict], str], fault: Callable[[dict], str]) -> None:
        super().__init__("ok", answer=answer)
        self.fault = fault

    def take(self, body: dict) -> str:
        with self.lock:
            mode = self.fault(body)
            self.requests += 1
            self.served[mode] += 1
            self.bodies.append(body)
            return mode


def prompt(body: dict) -> tuple[str, str]:
    """The system and the last user message of a request."""
    messages = body.get("messages", [])
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    return system, messages[-1]["content"]


def item_of(body: dict) -> int:
    """Which of the first three sample items a request is about, from the task it quotes."""
    _, user = prompt(body)
    return next(n for n, question in enumerate(QUESTIONS) if question in user)


def kind_of(body: dict) -> str:
    """Who is asked, read from the prompt as the model reads it: the output format names the
    act, the system prompt the role."""
    system, user = prompt(body)
    if "`DECISION: uphold`" in user:
        return "censor"
    if "VOTE: <number>" in user:
        return "elector"
    if "`VOTE: abstain`" in user:
        return "tribune" if system.startswith("You are the Tribune") else "citizen"
    if "annul (to block it)" in user:
        return "judge"
    if system.startswith("You are the Magistrate"):
        return "magistrate"
    if "Stand for magistrate" in user:
        return "nominee"
    return "unknown"


@dataclass
class Republic:
    """The model of every seat, as scripted per item (0, 1, 2 of the sample):

    - item 0: three nominees answer 30, 31, 31; the electors approve `2`, `2, 3` and `1, 3`,
      so candidates 2 and 3 tie on two approvals and the earlier, 2, is elected; the first
      citizen abstains and the law passes; the censor upholds; the court annuls it.
    - item 1: the magistrate holds over; the first tribune vetoes, the censor remands the veto
      to a new proposal, which passes, and the court approves. (Had the office been vacant,
      candidate 1 would have been elected among 350, 351 and 352.)
    - item 2: the term is over: a new election, where candidate 3 is approved on every
      ballot; the law passes and the court approves.

    None of the answers is the gold one, so that a gold number in a prompt can only have
    come from govern.
    """

    nominees: tuple[tuple[int, ...], ...] = ((30, 31, 31), (350, 351, 352), (5, 6, 7))
    ballots: tuple[tuple[str, ...], ...] = (
        ("2", "2, 3", "1, 3"),
        ("1", "1", "2"),
        ("3", "1, 3", "3"),
    )
    laws: tuple[int, ...] = (31, 350, 7)
    unparsable_censor: bool = False  # the censor's every reply is unreadable

    def __post_init__(self) -> None:
        self.asked: Counter[tuple[int, str]] = Counter()
        self.slates: dict[int, list[str]] = {}  # item -> the nominees' seats, as numbered
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> str:
        item, kind = item_of(body), kind_of(body)
        with self.lock:
            n = self.asked[item, kind]
            self.asked[item, kind] += 1
        _, user = prompt(body)
        if kind == "nominee":
            return f"I stand on my answer.\n#### {self.nominees[item][n]}"
        if kind == "elector":
            self.slates[item] = [seat for _, seat in _CANDIDATE.findall(user)]
            return f"My choice.\nVOTE: {self.ballots[item][n]}"
        if kind == "magistrate":
            return f"The law, worked out.\n#### {self.laws[item]}"
        if kind == "citizen":
            return "I cannot judge it.\nVOTE: abstain" if n == 0 else "Sound.\nVOTE: yes"
        if kind == "tribune":
            return "Wrong, I forbid it.\nVOTE: no" if (item, n) == (1, 0) else "Fine.\nVOTE: yes"
        if kind == "censor":
            if self.unparsable_censor:
                return "Hmm, I would rather not say."
            if "decided 'vetoed'" in user:
                return "The veto was unfounded.\nDECISION: remand"
            return "Nothing amiss.\nDECISION: uphold"
        if kind == "judge":
            return "Unlawful.\nDECISION: annul" if item == 0 else "It stands.\nDECISION: approve"
        return "I do not know what I am asked."


def ok(body: dict) -> str:
    return "ok"


@dataclass(frozen=True)
class Ran:
    """A finished `govern run`: its status, console, folder and what the server received."""

    status: int
    stdout: str
    stderr: str
    out: Path
    bodies: list[dict]
    model: Republic

    @property
    def results(self) -> list[dict]:
        lines = (self.out / "results.jsonl").read_text().splitlines()
        return sorted((json.loads(line) for line in lines), key=lambda r: r["id"])

    @property
    def entries(self) -> list[dict]:
        return [json.loads(line) for line in (self.out / "ledger.jsonl").read_text().splitlines()]

    def kind(self, kind: str) -> list[dict]:
        return [e["body"] for e in self.entries if e["kind"] == kind]


def govern_run(
    folder: Path, model: Republic, fault: Callable[[dict], str], *args: str, limit: int = 3
) -> Ran:
    """`govern run` of the small republic (``folder``/republic.yaml unless ``args`` name a
    manifest) on the first ``limit`` sample items, one call at a time, against a loopback
    server playing ``model``; as a user whose home is ``folder``, with the test keys."""
    from govern.cli import main

    institution = write(folder, "republic.yaml", REPUBLIC)
    write(folder, "pyproject.toml", "")
    out = folder / "run"
    with PromptServer(model, fault) as server, pytest.MonkeyPatch.context() as patch:
        patch.delenv("GOVERN_KEY_FILE", raising=False)
        for name, value in {
            **TEST_KEYS,
            "HOME": str(folder),
            "XDG_CONFIG_HOME": str(folder / ".config"),
            "GOVERN_CACHE": "off",
        }.items():
            patch.setenv(name, value)
        target = list(args) or [str(institution), "--model", MODEL, "--api-base", server.url]
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(
                [
                    "run",
                    *[a.replace("{API_BASE}", server.url) for a in target],
                    "--task", "gsm8k",
                    "--data", str(SAMPLE),
                    "--limit", str(limit),
                    "--concurrency", "1",
                    "--out", str(out),
                ]
            )  # fmt: skip
        bodies = list(server.bodies)
    return Ran(status, stdout.getvalue(), stderr.getvalue(), out, bodies, model)


@pytest.fixture(scope="module")
def republic(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """One run of the republic on three items, shared by the tests that read it."""
    return govern_run(tmp_path_factory.mktemp("republic"), Republic(), ok)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries of a failing call go out at once: the same attempts and reasons as a user's
    run, without its seconds of backoff."""
    monkeypatch.setattr(LiteLLMClient, "_delay", lambda self, retry, retry_after: 0.0)


def audited(cli, ran: Ran) -> subprocess.CompletedProcess[str]:
    return cli("audit", str(ran.out), home=ran.out.parent, **TEST_KEYS)


# --- 1. the second edition runs on a real model --------------------------------------------


def test_the_republic_runs_its_lots_elections_offices_vetoes_and_oversight(
    republic: Ran, cli
) -> None:
    assert republic.status == 0, republic.stderr
    assert not republic.model.asked.keys() & {(n, "unknown") for n in range(3)}
    first, second, third = republic.results
    assert first["path"] == [*ELECTED, "struck_down"]  # the court's own word, meaning veto
    assert second["path"] == [*HELD[:3], "proposal", "assembly", "court", "enacted"]
    assert third["path"] == [*ELECTED, "enacted"]  # the two-item term ended: elected again
    assert [r["outcome"] for r in republic.results] == ["rejected", "completed", "completed"]
    assert [r["prediction_strict"] for r in republic.results][1:] == ["350", "7"]
    assert not any(r["errors"] for r in republic.results)

    # lots: three citizens drawn on each item that elects, each draw redone by the audit
    lots = republic.kind("lot")
    assert [(lot["item"], lot["stage"], lot["draw"]) for lot in lots] == [
        ("sample/0000", "sortition", 3),
        ("sample/0002", "sortition", 3),
    ]
    assert all(sorted(lot["drawn"]) == ["citizen#1", "citizen#2", "citizen#3"] for lot in lots)

    # elections: the slate as the electors saw it; candidate 2 wins the tie, then 3
    slates = republic.model.slates
    assert [lot["drawn"] for lot in lots] == [slates[0], slates[2]]  # nominees in draw order
    offices = republic.kind("office")
    assert [(o["event"], o["item"], o.get("by"), o.get("seats")) for o in offices] == [
        ("chosen", "sample/0000", "election", [slates[0][1]]),
        ("term_ended", "sample/0001", None, None),
        ("chosen", "sample/0002", "election", [slates[2][2]]),
    ]
    assert {o["term"] for o in offices} == {2}
    elected = [t for t in first["turns"] if t["stage"] == "election"]
    assert [t["ballot"] for t in elected] == [[2], [2, 3], [1, 3]]
    magistrates = [
        t["agent"] for r in republic.results for t in r["turns"] if t["stage"] == "proposal"
    ]
    assert magistrates == [slates[0][1]] * 3 + [slates[2][2]]  # the holder speaks, held over

    # the motion: an abstention counted, a tribune's veto, the censor's remand
    ballots = [(t["seat"], t["ballot"]) for t in second["turns"] if "ballot" in t]
    assert [b for _, b in ballots] == ["abstain", "yes", "yes", "no", "yes", *["yes"] * 5]
    assert ballots[3][0].startswith("tribune#")
    overseen = [e for e in republic.kind("transition") if e["item"] == "sample/0001"]
    assert ("assembly", "vetoed") in [(e["stage"], e["decision"]) for e in overseen]
    (intervened,) = [e for e in overseen if e["via"] == "oversight"]
    assert (intervened["rule"], intervened["to"], intervened["actor"]) == (
        "oversight:censor:remand",
        "proposal",
        "censor#1",
    )
    censor = [
        (t["stage"], t["decision"])
        for r in republic.results
        for t in r["turns"]
        if t.get("oversight")
    ]
    assert censor == [
        ("assembly", "uphold"),
        ("court", "uphold"),
        ("assembly", "remand"),  # its one intervention on the item: not drawn again there
        ("assembly", "uphold"),
        ("court", "uphold"),
    ]
    redrafted = [t for t in second["turns"] if t["stage"] == "proposal"][1]
    assert "The veto was unfounded." in redrafted["messages"][-1]["content"]  # its reasons
    draws = republic.kind("oversight")
    assert len(draws) == len(censor) and all(d["sampled"] for d in draws)  # rate 1: every one

    done = audited(cli, republic)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lots: 2 draws redone" in done.stdout


# --- 2. nothing hidden reaches the model --------------------------------------------------


def test_requests_are_plain_chat_completions_without_the_gold_or_the_oracle(
    republic: Ran,
) -> None:
    bodies = republic.bodies
    turns = [t for r in republic.results for t in r["turns"]]
    assert len(bodies) == len(turns) == sum(r["calls"] for r in republic.results)
    assert sorted(b["seed"] for b in bodies) == sorted(t["seed"] for t in turns)
    for body in bodies:
        assert set(body) <= PLAIN_FIELDS, sorted(set(body) - PLAIN_FIELDS)
        assert body["model"] == MODEL.removeprefix("openai/")
        assert {m["role"] for m in body["messages"]} <= {"system", "user"}
        assert all(set(m) == {"role", "content"} for m in body["messages"])
        raw = json.dumps(body)
        for hidden in ("gold", "oracle", "sample/000", "item_id", "run_seed", "<<"):
            assert hidden not in raw, hidden
        n = item_of(body)
        text = "\n".join(m["content"] for m in body["messages"])
        assert WORKINGS[n] not in text
        assert f"#### {GOLDS[n]}" not in text
        if not re.search(rf"(?<!\d){GOLDS[n]}(?!\d)", QUESTIONS[n]):
            assert not re.search(rf"(?<!\d){GOLDS[n]}(?!\d)", text), (n, text)


# --- 3. failures show on the console ------------------------------------------------------


def ballots_of_the_first_item_fail(mode: str) -> Callable[[dict], str]:
    """``mode`` for every call of the first item's election, a good reply for the rest."""
    return lambda body: mode if (item_of(body), kind_of(body)) == (0, "elector") else "ok"


@pytest.mark.usefixtures("no_backoff")
def test_an_election_whose_ballots_get_http_500_fails_its_item_with_the_reason_on_the_console(
    tmp_path: Path,
) -> None:
    ran = govern_run(tmp_path, Republic(), ballots_of_the_first_item_fail("server_error"), limit=2)
    reason = f"{MODEL}: server error (HTTP 500) after 4 attempts"
    assert ran.status == 0, ran.stderr  # some items were scored (the README: 1 only if none)
    assert ran.stderr.splitlines() == ["failures: 1 of 2 items failed:", f"  1  {reason}"]
    assert "outcomes" in ran.stdout and "error 1" in ran.stdout
    failed, elected = ran.results
    assert failed["outcome"] == "error" and failed["path"] == ELECTED[:4]
    # the stage that failed, in the record: one error per failed call, the stop adds none
    assert failed["errors"] == [f"election: {reason}"] * 3
    assert failed["calls"] == 3 + 3 and failed["failed_attempts"] == 3 * 4
    assert elected["outcome"] == "completed" and elected["path"][:4] == ELECTED[:4]
    summary = json.loads((ran.out / "summary.json").read_text())
    assert summary["failures"] == {reason: 1} and summary["outcomes"]["error"] == 1
    offices = ran.kind("office")
    assert [(o["event"], o["item"]) for o in offices] == [("chosen", "sample/0001")]
    ends = [e for e in ran.kind("item") if e["event"] == "end"]
    assert [e["item"] for e in ends] == ["sample/0000", "sample/0001"]


@pytest.mark.usefixtures("no_backoff")
def test_a_run_whose_every_item_gets_malformed_json_at_its_election_exits_1(
    tmp_path: Path,
) -> None:
    ran = govern_run(tmp_path, Republic(), ballots_of_the_first_item_fail("garbage"), limit=1)
    assert ran.status == 1
    lines = ran.stderr.splitlines()
    assert lines[0] == "failures: 1 of 1 items failed:"
    assert lines[1].startswith(f"  1  {MODEL}: invalid response") and "not JSON" in lines[1]
    assert lines[-1] == "govern: every item failed (1 of 1): nothing was scored"
    (failed,) = ran.results
    assert failed["outcome"] == "error" and failed["errors"][-1].startswith("election: ")
    assert failed["errors"][-1].removeprefix("election: ") == lines[1].strip().removeprefix("1  ")


def test_an_unparsable_overseer_upholds_and_is_counted_in_the_summary(tmp_path: Path) -> None:
    ran = govern_run(tmp_path, Republic(unparsable_censor=True), ok, limit=1)
    assert ran.status == 0, ran.stderr
    (result,) = ran.results
    assert result["path"] == [*ELECTED, "struck_down"]  # as the court decided: upheld
    censor = [t for t in result["turns"] if t.get("oversight")]
    assert [(t["stage"], t["parsed"]) for t in censor] == [("assembly", False), ("court", False)]
    assert not any(e["via"] == "oversight" for e in ran.kind("transition"))
    summary = json.loads((ran.out / "summary.json").read_text())
    assert summary["unparsed_turns"] == 2
    (row,) = [line for line in ran.stdout.splitlines() if "unparsed model outputs" in line]
    assert row.split("│")[-2].strip() == "2"


# --- 4. one model per seat, on the same server -------------------------------------------

SEATS = """id: republic_seats
institution: republic.yaml
task: {name: gsm8k}
models:
  default: openai/republic-model
  seats:
    citizen: [openai/citizen-a, openai/citizen-b, openai/citizen-a]
    tribune: [openai/tribune-strong, openai/tribune-weak]
"""
SEAT_MODELS = {
    "citizen#1": "citizen-a",
    "citizen#2": "citizen-b",
    "citizen#3": "citizen-a",
    "tribune#1": "tribune-strong",
    "tribune#2": "tribune-weak",
}


def test_each_seat_is_asked_on_its_own_model_and_the_magistrate_on_its_seats(
    tmp_path: Path,
) -> None:
    manifest = write(tmp_path, "seats.yaml", SEATS)
    ran = govern_run(tmp_path, Republic(), ok, str(manifest), "--api-base", "{API_BASE}", limit=1)
    assert ran.status == 0, ran.stderr
    (result,) = ran.results
    assert result["path"] == [*ELECTED, "struck_down"]
    by_seed = {body["seed"]: body["model"] for body in ran.bodies}
    assert len(by_seed) == len(ran.bodies) == len(result["turns"])
    for turn in result["turns"]:
        seat = turn.get("seat", turn["agent"])  # an office holder speaks from its own seat
        expected = SEAT_MODELS.get(seat, "republic-model")
        assert by_seed[turn["seed"]] == expected, turn["stage"]
        assert turn["model"] == f"openai/{expected}"
    asked = Counter(body["model"] for body in ran.bodies)
    assert set(asked) == {*SEAT_MODELS.values(), "republic-model"}
    (magistrate,) = [t for t in result["turns"] if t["stage"] == "proposal"]
    assert magistrate["agent"].startswith("citizen#")  # on citizen-a or -b, never the default
