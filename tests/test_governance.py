"""The Controller's agent-state ladder, stand-ins, the manifest guard, and overlay checks."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from govern.governance import guard as guard_module
from govern.governance.controller import Controller
from govern.governance.guard import ManifestChanged, ManifestGuard
from govern.ledger.audit import audit
from govern.ledger.memory import MemoryLedger
from govern.models.sim.scripted import ScriptedClient
from govern.run.runner import RunRequest, execute, prepare
from govern.spec.models import Governance
from govern.tasks.gsm8k import SAMPLE
from tests.conftest import ROOT, TEST_KEYS, spec_errors, write
from tests.engine_harness import institution_at

CHANCERY = ROOT / "manifests" / "chancery_governed.yaml"


def ledger_entries(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "ledger.jsonl").read_text().splitlines()]


def run_chancery(out: Path) -> Path:
    """The shipped governed manifest on 25 sample items, one item at a time: the README's
    `govern run manifests/chancery_governed.yaml --limit 25 --concurrency 1`."""
    request = RunRequest(CHANCERY, limit=25, concurrency=1, out=out, data=SAMPLE)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in TEST_KEYS.items():
            patch.setenv(name, value)
        asyncio.run(execute(prepare(request)))
    return out


@pytest.fixture(scope="module")
def chancery_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_chancery(tmp_path_factory.mktemp("chancery") / "run")


def what_happened(folder: Path) -> list[tuple[str, str, str]]:
    """The ledger's entries without what differs between two runs: times, the run id and
    the digests of result lines (which hold latencies)."""
    return [
        (e["kind"], e["actor"], json.dumps(e["body"] | {"result_sha256": None}, sort_keys=True))
        for e in ledger_entries(folder)
        if e["kind"] not in ("header", "seal", "files")
    ]


def test_a_governed_run_with_concurrency_1_is_deterministic(
    chancery_run: Path, tmp_path: Path
) -> None:
    again = run_chancery(tmp_path / "again")
    assert what_happened(again) == what_happened(chancery_run)


def test_the_readme_shows_what_the_governed_example_prints(chancery_run: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    example = readme.split("govern audit runs/<that run> --explain", 1)[1]
    excerpt = example.split("```text\n", 1)[1].split("```", 1)[0]
    printed = "\n".join(audit(chancery_run, explain=True).text).splitlines()
    for line in excerpt.splitlines():
        assert line in printed, f"the README shows a line the run does not print: {line!r}"


def test_the_ladder_is_in_the_ledger(chancery_run: Path) -> None:
    states = [e["body"] for e in ledger_entries(chancery_run) if e["kind"] == "state"]
    clerk = [(s["rule"], s["from"], s["to"], s["kind"]) for s in states if s["agent"] == "clerk#1"]
    assert clerk[0] == ("format:active->warned", "active", "warned", "sanction")
    assert clerk[1] == ("format:warned->suspended", "warned", "suspended", "sanction")
    assert ("suspension:suspended->warned", "suspended", "warned", "expiry") in clerk
    assert ("good_record:warned->active", "warned", "active", "restoration") in clerk
    findings = [e["body"] for e in ledger_entries(chancery_run) if e["kind"] == "finding"]
    ladder = [f for f in findings if f["predicate"] == "unparsable_streak"]
    assert {
        "rule": "format:warned->suspended",
        "predicate": "unparsable_streak",
        "subject": "clerk#1",
    }.items() <= ladder[1].items()


def test_the_stand_in_acts_while_the_clerk_is_suspended(chancery_run: Path) -> None:
    entries = ledger_entries(chancery_run)
    suspended_at = next(
        e["seq"] for e in entries if e["kind"] == "state" and e["body"]["to"] == "suspended"
    )
    expires_at = next(
        e["seq"] for e in entries if e["kind"] == "state" and e["body"]["kind"] == "expiry"
    )
    drafts = [
        e
        for e in entries
        if e["kind"] == "turn"
        and e["body"]["stage"] == "draft"
        and suspended_at < e["seq"] < expires_at
    ]
    assert drafts and {e["actor"] for e in drafts} == {"deputy#1"}
    blocked = [
        e["body"] for e in entries if e["kind"] == "transition" and e["body"]["status"] == "blocked"
    ]
    assert any(b.get("stand_in") == "deputy#1" and b["actor"] == "clerk#1" for b in blocked)


def test_notices_reach_the_agent_with_the_norms(chancery_run: Path) -> None:
    turns = [
        t
        for line in (chancery_run / "results.jsonl").read_text().splitlines()
        for t in json.loads(line)["turns"]
    ]
    noticed = [t for t in turns if "Notices from the Controller" in t["messages"][1]["content"]]
    assert noticed and noticed[0]["agent"] == "clerk#1"
    assert "every clerk must end each answer" in noticed[0]["messages"][1]["content"].lower()


def test_explain_tells_the_story_per_agent(chancery_run: Path) -> None:
    result = audit(chancery_run, explain=True)
    text = "\n".join(result.text)
    assert result.intact and text.startswith("intact: ")
    assert "sanction format:active->warned: from active to warned (warning)" in text
    assert "sanction format:warned->suspended: from warned to suspended (suspension)" in text
    assert "deputy#1 acted instead" in text and "restoration good_record" in text


def overlay(**fields) -> Governance:
    base = {
        "states": ["active", "warned", "suspended", "removed", "mute"],
        "initial": "active",
        "acting": ["active", "warned", "mute"],
    }
    return Governance.model_validate({**base, **fields})


def streak_rule(to: str, sanction: dict | None, count: int = 2) -> dict:
    rule = {
        "name": "format",
        "from": "active",
        "to": to,
        "evidence": {"predicate": "unparsable_streak", "count": count},
    }
    return {**rule, "sanction": sanction} if sanction else rule


def observe(controller: Controller, agent: str, parsed: bool, item: str = "i") -> None:
    controller.observe_turn(item, "draft", agent, 1, "solve", "m", [], "text", parsed, (1, 1))


def test_credits_earned_by_clean_turns_buy_the_way_back() -> None:
    rules = [streak_rule("warned", {"kind": "warning"})]
    ways = [{"name": "credit", "from": "warned", "to": "active", "credits": 3}]
    controller = Controller(
        institution_at("institutions/tang.yaml"), overlay(rules=rules, restorations=ways)
    )
    for parsed in (False, False, True, True):
        observe(controller, "zhongshu#1", parsed)
    assert controller.agents["zhongshu#1"].state == "warned"
    observe(controller, "zhongshu#1", True)
    assert controller.agents["zhongshu#1"].state == "active"


def test_replacement_seats_a_fresh_agent() -> None:
    ledger = MemoryLedger()
    controller = Controller(
        institution_at("institutions/tang.yaml"),
        overlay(rules=[streak_rule("removed", {"kind": "replacement"})]),
        ledger,
    )
    observe(controller, "zhongshu#1", False)
    observe(controller, "zhongshu#1", False)
    assert controller.actor_for("i", "draft", "zhongshu") == "zhongshu#1~2"
    replaced = [e["body"] for e in ledger.of_kind("state") if e["body"]["kind"] == "replacement"]
    assert replaced == [
        {
            "agent": "zhongshu#1~2",
            "item": "i",
            "rule": "format:active->removed",
            "from": None,
            "to": "active",
            "kind": "replacement",
            "replaces": "zhongshu#1",
        }
    ]


def test_loss_of_vote_leaves_the_seat_vacant_in_votes_only() -> None:
    controller = Controller(
        institution_at("institutions/athens.yaml"),
        overlay(rules=[streak_rule("mute", {"kind": "loss_of_vote"})]),
    )
    observe(controller, "citizen#2", False)
    observe(controller, "citizen#2", False)
    citizens = [f"citizen#{n}" for n in range(1, 6)]
    seats = controller.seat_actors("i", "assembly", citizens, voting=True)
    assert [seat for seat, _ in seats] == ["citizen#1", "citizen#3", "citizen#4", "citizen#5"]
    assert controller.may_act("citizen#2")


def test_a_fine_is_recorded_and_a_cooldown_holds_the_rule_back() -> None:
    rules = [{**streak_rule("active", {"kind": "fine", "fraction": 0.1}, count=1), "cooldown": 2}]
    controller = Controller(institution_at("institutions/bare.yaml"), overlay(rules=rules))
    for _ in range(3):
        observe(controller, "solver#1", False)
    assert controller.agents["solver#1"].fines == pytest.approx(0.1)
    controller.end_item("i", "completed")
    controller.end_item("j", "completed")
    observe(controller, "solver#1", False)
    assert controller.agents["solver#1"].fines == pytest.approx(0.2)


def test_a_blocked_transition_without_a_stand_in_stops_the_item() -> None:
    ledger = MemoryLedger()
    controller = Controller(
        institution_at("institutions/bare.yaml"),
        overlay(rules=[streak_rule("suspended", {"kind": "suspension", "items": 1})]),
        ledger,
    )
    observe(controller, "solver#1", False)
    observe(controller, "solver#1", False)
    moved = controller.transition("i", "solve", "done", "solver#1", {})
    assert moved.key == "__stop__"  # no stand-in for the only solver: the item stops
    (blocked,) = [e["body"] for e in ledger.of_kind("transition")]
    assert blocked["status"] == "blocked" and blocked["then"] == "stop"


def test_changing_the_manifest_mid_run_halts_it(tmp_path: Path) -> None:
    manifest = write(tmp_path, "m.yaml", (ROOT / "manifests" / "senate.yaml").read_text())
    write(tmp_path, "pyproject.toml", "")
    run = prepare(RunRequest(manifest, limit=6, concurrency=1, out=tmp_path / "run", data=SAMPLE))
    edits = iter(range(100))

    class EditsTheManifest(ScriptedClient):
        async def complete(self, request):
            if next(edits) == 20:
                manifest.write_text(manifest.read_text() + "\n# changed\n")
            return await super().complete(request)

    run.context.router._clients["sim/medium"] = EditsTheManifest({})
    with pytest.raises(ManifestChanged):
        asyncio.run(execute(run))
    summary = json.loads((run.folder / "summary.json").read_text())
    assert summary["complete"] is False and 0 < summary["n"] < 6
    halt = [e for e in ledger_entries(run.folder) if e["kind"] == "halt"]
    assert halt and halt[0]["body"]["reason"] == "manifest changed"
    verdict = audit(run.folder)  # halted: sealed and intact, but not a complete run
    assert verdict.report["ledger"]["intact"] and verdict.report["ledger"]["closed_as"] == "halted"
    assert not verdict.intact


def test_the_guard_rehashes_only_a_file_whose_status_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard skips hashing a file whose status (inode, size, mtime, ctime) is as it was
    once it has settled; an edit in place that keeps the size and puts the mtime back still
    moves the ctime, so it is caught."""
    path = write(tmp_path, "m.yaml", "a: 1\n")
    guard, ledger = ManifestGuard([path]), MemoryLedger()
    guard.check(ledger)
    assert not guard._trusted  # just written: not settled, so hashed at every check
    monkeypatch.setattr(guard_module, "SETTLED_NS", 0)
    guard.check(ledger)
    assert str(path) in guard._trusted
    before = path.stat()
    time.sleep(0.01)
    path.write_text("a: 2\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ManifestChanged):
        guard.check(ledger)
    assert ledger.of_kind("halt")

    other = write(tmp_path, "n.yaml", "b: 1\n")
    guard = ManifestGuard([other])
    guard.check(ledger)
    write(tmp_path, "n.yaml.new", "b: 1\n").replace(other)  # replaced by the same text
    guard.check(ledger)


OVERLAY_ERRORS = [
    ("initial: actve", "no state 'actve' (did you mean 'active'?)"),
    ("acting: [active, snoozing]", "no state 'snoozing'"),
    (
        "rules: [{name: r, from: active, to: gone, evidence: {predicate: unparsable_streak}}]",
        "no state 'gone'",
    ),
    (
        "rules: [{name: r, from: active, to: warned, evidence: {predicate: unparsable_strek}}]",
        "no predicate 'unparsable_strek' (did you mean 'unparsable_streak'?)",
    ),
    (
        "rules: [{name: r, from: active, to: warned, evidence: {predicate: unparsable_streak},"
        " sanction: {kind: suspension, items: 2}}]",
        "a suspension moves the agent to 'warned'",
    ),
    ("stand_in: {kind: role, role: deputee}", "no role 'deputee'"),
    (
        "rules: [{name: r, from: active, to: warned, evidence: {predicate: unparsable_streak},"
        " sanction: {kind: suspension}}]",
        "a suspension needs items: N",
    ),
]


@pytest.mark.parametrize(("line", "message"), OVERLAY_ERRORS)
def test_overlay_mistakes_are_reported_at_their_line(
    project: Path, line: str, message: str
) -> None:
    text = (ROOT / "manifests" / "senate.yaml").read_text() + (
        "governance:\n  states: [active, warned]\n  initial: active\n  acting: [active, warned]\n"
    )
    key = line.split(":")[0]
    lines = [ln for ln in text.splitlines() if not ln.startswith(f"  {key}:")] + [f"  {line}"]
    path = write(project, "m.yaml", "\n".join(lines) + "\n")
    errors = spec_errors(path)
    matching = [e for e in errors if message in e.message]
    assert matching, [str(e) for e in errors]
    assert matching[0].line == len(lines), str(matching[0])
