"""Events typed from a run's structure and the five cascade measures, on small hand-built
turn lists and event graphs whose answers are worked out by hand."""

from __future__ import annotations

from typing import Any

from govern.trace.cascades import cascades
from govern.trace.events import Event, item_events

KINDS = {"propose": "propose", "review": "review", "vote": "vote", "panel": "cluster",
         "merge": "integrate", "revise": "draft"}  # fmt: skip
MEANINGS = {"approve": "approve", "reject": "reject", "amend": "amend", "annul": "veto"}


def turn(seq: int, stage: str, agent: str, act: str, **extra: Any) -> dict[str, Any]:
    return {"seq": seq, "at": float(seq), "stage": stage, "agent": agent, "act": act,
            "visit": 1, "text": f"output {seq}", "prompt_tokens": 10, "completion_tokens": 5,
            **extra}  # fmt: skip


def events_of(turns: list[dict[str, Any]], sanctions=()) -> list[Event]:
    record = {"id": "item-1", "turns": turns}
    return item_events(
        "run", record, KINDS.get, lambda stage, word: MEANINGS.get(word, word), list(sanctions)
    )


def test_turns_are_typed_by_what_the_stage_did_and_decided() -> None:
    events = events_of(
        [
            turn(1, "propose", "consul#1", "solve", answer="42"),
            turn(2, "review", "tribune#1", "review", decision="reject"),
            turn(3, "revise", "consul#1", "revise", answer="41"),
            turn(4, "review", "tribune#1", "review", decision="approve"),
            turn(5, "vote", "senator#1", "vote", ballot="yes"),
            turn(6, "vote", "senator#2", "vote", ballot="no"),
            turn(7, "review", "censor#1", "review", decision="annul"),
            turn(8, "review", "censor#1", "review", decision="amend", answer="40"),
        ]
    )
    assert [e.type for e in events] == [
        "propose", "contradict", "revise", "endorse", "vote", "vote", "contradict", "revise",
    ]  # fmt: skip
    ids = [e.id for e in events]
    assert events[0].parents == [] and ids[0] == "run:1"
    assert events[1].parents == [ids[0]] and events[2].parents == [ids[0]]
    assert all(e.parents == [ids[2]] for e in events[3:8])  # the revision is on the table
    assert events[0].tokens == 15 and events[0].output_sha256 is not None


def test_a_body_delegates_and_a_merge_integrates_its_seats() -> None:
    events = events_of(
        [
            turn(1, "propose", "chief#1", "solve", answer="7"),
            turn(2, "panel", "unit#1", "revise", answer="7"),
            turn(3, "panel", "unit#2", "revise", answer="8"),
            turn(4, "panel", "unit#3", "revise", answer="7"),
            turn(5, "merge", "chief#1", "integrate", answer="7"),
            turn(6, "vote", "senator#1", "vote"),
        ]
    )
    assert [e.type for e in events] == ["propose", "delegate", "delegate", "delegate", "merge",
                                        "vote"]  # fmt: skip
    assert events[4].parents == ["run:2", "run:3", "run:4"]
    assert events[5].parents == ["run:5"]


def test_a_reask_builds_on_the_reply_it_replaces_and_a_sanction_on_the_agents_last() -> None:
    events = events_of(
        [
            turn(1, "propose", "consul#1", "solve"),
            turn(2, "propose", "consul#1", "solve", reask=1, answer="3"),
        ],
        sanctions=[{"seq": 3, "at": 3.0, "agent": "consul#1"}],
    )
    assert events[1].parents == ["run:1"]
    assert events[2].type == "sanction" and events[2].parents == ["run:2"]


def test_market_rounds_build_on_every_firms_previous_round() -> None:
    events = events_of(
        [
            turn(1, "market", "firm#1", "produce", round=0),
            turn(2, "market", "firm#2", "produce", round=0),
            turn(3, "market", "firm#1", "produce", round=1),
            turn(4, "market", "firm#2", "produce", round=1),
        ]
    )
    assert [e.parents for e in events] == [[], [], ["run:1", "run:2"], ["run:1", "run:2"]]


def event(n: int, kind: str, agent: str, *parents: int, tokens: int = 1) -> Event:
    return Event(
        id=f"r:{n}", run="r", time=float(n), item="i", agent=agent, stage="s", type=kind,
        parents=[f"r:{p}" for p in parents], output_sha256=None, tokens=tokens,
    )  # fmt: skip


def test_the_five_measures_of_a_hand_built_cascade() -> None:
    """Root 1 is delegated to three seats (2, 3, 4), merged (5), contradicted by two agents
    (6, 7) and once more by one of them (8), revised twice in a wave (9 on 5, 10 on 9), and
    endorsed (11). Root 12 stands alone; root 13 and root 14 are merged together (15)."""
    graph = [
        event(1, "propose", "a"),
        event(2, "delegate", "b", 1),
        event(3, "delegate", "c", 1),
        event(4, "delegate", "d", 1),
        event(5, "merge", "a", 2, 3, 4, tokens=10),
        event(6, "contradict", "e", 5),
        event(7, "contradict", "f", 5),
        event(8, "contradict", "e", 5),
        event(9, "revise", "a", 5, 6, 7, 8),
        event(10, "revise", "a", 9),
        event(11, "endorse", "e", 10),
        event(12, "propose", "g"),
        event(13, "propose", "h"),
        event(14, "propose", "i"),
        event(15, "merge", "h", 13, 14),
    ]
    found = {c.root: c for c in cascades(graph)}
    first = found["r:1"]
    assert (first.delegation, first.revision, first.contradiction, first.fanin) == (3, 2, 2, 3)
    assert first.effort_events == 10 and first.effort_tokens == 19
    alone = found["r:12"]
    assert (alone.effort_events, alone.delegation, alone.revision, alone.fanin) == (0, 0, 0, 0)
    assert found["r:13"].fanin == 2 and found["r:14"].effort_events == 1
    assert set(found) == {"r:1", "r:12", "r:13", "r:14"}


def test_concentration_of_attention_by_hand() -> None:
    from govern.trace.elites import concentration, gini

    assert gini([1, 1, 1, 1]) == 0 and gini([0, 0, 0, 4]) == 0.75 and gini([]) == 0
    graph = [
        event(1, "propose", "a"),
        event(2, "revise", "b", 1),
        event(3, "endorse", "c", 2),
        event(4, "contradict", "d", 1),
        event(5, "vote", "d", 1),
    ]
    found = concentration(graph)  # a draws 3 (2, 4, 5), b draws 1 (3), c and d none
    assert found.attention == 4 and found.agents == 4
    assert found.shares == {"a": 0.75, "b": 0.25, "c": 0.0, "d": 0.0}
    assert found.top_share == 0.75  # the top 10% of 4 agents is one agent
    assert found.effective_agents == 1 / (0.75**2 + 0.25**2)
    assert found.gini == gini([3, 1, 0, 0])


# --- events of a real run -------------------------------------------------------------------


def test_a_runs_events_match_its_ledger_and_are_bound_to_it(tmp_path) -> None:
    import json

    from tests.conftest import ROOT
    from tests.conftest import run_cli as govern

    out = tmp_path / "run"
    result = govern("run", "manifests/senate.yaml", "--limit", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    events = [Event(**json.loads(line)) for line in (out / "events.jsonl").read_text().splitlines()]
    ledger = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    turns = {f"{e['run']}:{e['seq']}": e for e in ledger if e["kind"] == "turn"}
    assert events and len(events) == len(turns)  # one event a turn, matched by id
    for event in events:
        entry = turns[event.id]
        assert (entry["actor"], entry["body"]["stage"]) == (event.agent, event.stage)
        assert entry["body"]["output_sha256"] == event.output_sha256
        assert all(parent in turns for parent in event.parents)
    audit = govern("audit", str(out))
    assert audit.returncode == 0 and "events.jsonl" in audit.stdout
    analysed = govern("trace", "analyze", str(out), "--json")
    assert analysed.returncode == 0, analysed.stderr
    report = json.loads(analysed.stdout)
    assert report["cascades"] == 4 and report["fit"] is None and "at least 50" in report["no_fit"]
    assert report["concentration"]["agents"] == len({e.agent for e in events})
    assert govern("trace", "analyze", str(ROOT / "tasks")).returncode == 1
    assert govern("trace", "analyze", str(tmp_path / "nowhere")).returncode == 2


def grown(beta: float, size: int, seed: int) -> list[Event]:
    """A society growing by preferential attachment: each new event builds on one of the
    item's claims so far with probability proportional to (attention + 1) ** beta, and is
    a claim itself."""
    import random

    rng = random.Random(seed)
    events = [event(0, "propose", "a0")]
    attention = [0]
    for n in range(1, size):
        weights = [(a + 1) ** beta for a in attention]
        parent = rng.choices(range(n), weights=weights)[0]
        attention[parent] += 1
        attention.append(0)
        events.append(event(n, "revise", f"a{n % 7}", parent))
    return events


def test_the_attachment_exponent_recovers_the_one_that_grew_the_society() -> None:
    from govern.trace.elites import attachment_exponent

    for beta in (0.0, 0.8, 1.2):
        found = attachment_exponent(grown(beta, 2000, seed=int(beta * 10)))
        assert abs(found.beta - beta) < 2.5 * found.sigma + 0.02, (beta, found)
        assert found.choices == 1998  # the first two events choose among fewer than two


def test_the_attachment_exponent_refuses_too_few_choices() -> None:
    import pytest

    from govern.trace.elites import NoAttachment, attachment_exponent

    with pytest.raises(NoAttachment, match="at least 20 are needed"):
        attachment_exponent(grown(1.0, 10, seed=1))


def society_runs(folder, sizes: list[int]) -> None:
    """An experiment folder whose cell with N agents has one claim that every agent
    builds on twice: its largest cascade is 2N events."""
    for n in sizes:
        cell = folder / "cells" / f"society-{n}"
        cell.mkdir(parents=True)
        events = [Event(
            id=f"r{n}:0", run=f"r{n}", time=0.0, item="i", agent="a0", stage="s",
            type="propose", parents=[], output_sha256=None, tokens=1,
        )]  # fmt: skip
        for k in range(2 * n):
            events.append(Event(
                id=f"r{n}:{k + 1}", run=f"r{n}", time=float(k + 1), item="i",
                agent=f"a{k % n}", stage="s", type="endorse", parents=[f"r{n}:0"],
                output_sha256=None, tokens=1,
            ))  # fmt: skip
        (cell / "events.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in events))


def test_the_largest_cascade_grows_with_the_agents_and_the_ccdf_is_drawn(tmp_path) -> None:
    import json

    from tests.conftest import run_cli as govern

    society_runs(tmp_path / "exp", [8, 16, 32, 64])
    result = govern("trace", "analyze", str(tmp_path / "exp"), "--json", "--plot",
                    str(tmp_path / "figures"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    scaling = report["scaling"]
    assert abs(scaling["exponent"] - 1) < 1e-9 and scaling["runs"] == 4
    assert scaling["points"] == [[8, 16], [16, 32], [32, 64], [64, 128]]
    assert report["simulated"] == "no"  # no summaries say so
    png = (tmp_path / "figures" / "ccdf-tce.png").read_bytes()
    assert png.startswith(b"\x89PNG") and (tmp_path / "figures" / "ccdf-tce.svg").is_file()
    assert (tmp_path / "figures" / "against-agents.png").read_bytes().startswith(b"\x89PNG")
    assert [s["agents"] for s in report["shapes"]] == [8, 16, 32, 64]
    two = govern("trace", "analyze", str(tmp_path / "exp" / "cells" / "society-8"))
    assert "needs runs of at least 3 sizes" in two.stdout


# --- the offline society ---------------------------------------------------------------------


def test_a_society_is_reproducible_and_follows_its_topology() -> None:
    from govern.trace.society import CLUSTER, SocietyParams, simulate

    params = SocietyParams(agents=32, rounds=5, topology="autonomous_cluster", seed=3)
    first, again = simulate(params), simulate(params)
    assert first == again and len(first) == 32 * 5
    by_id = {e.id: e for e in first}
    for event in first:  # an agent builds only on claims of its own cluster
        for parent in event.parents:
            mine = int(event.agent.split("#")[1]) - 1
            theirs = int(by_id[parent].agent.split("#")[1]) - 1
            assert mine // CLUSTER == theirs // CLUSTER


def test_dti_merges_a_societys_roots_when_the_deficit_says() -> None:
    from govern.spec.models import DTIParams
    from govern.trace.society import MERGE_AT_MOST, SocietyParams, simulate

    events = simulate(SocietyParams(agents=16, rounds=8, dti=DTIParams(), seed=2))
    merges = [e for e in events if e.type == "merge"]
    assert merges and all(1 <= len(m.parents) <= MERGE_AT_MOST for m in merges)
    assert not [e for e in simulate(SocietyParams(agents=16, rounds=8, seed=2))
                if e.type == "merge"]  # fmt: skip


def test_the_society_command_writes_what_analyze_reads(tmp_path) -> None:
    import json

    from tests.conftest import run_cli as govern

    out = tmp_path / "societies"
    made = govern("trace", "society", "--out", str(out), "--agents", "8,32,128", "--seed", "1")
    assert made.returncode == 0 and "SIMULATED" in made.stdout, made.stderr
    analysed = govern("trace", "analyze", str(out), "--json")
    report = json.loads(analysed.stdout)
    assert report["simulated"] == "yes" and report["scaling"]["runs"] == 3
    assert abs(report["attachment"]["beta"] - 1) < 4 * report["attachment"]["sigma"] + 0.05
    again = govern("trace", "society", "--out", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr
    assert govern("trace", "society", "--out", str(tmp_path / "x"), "--agents", "1").returncode == 2


def test_an_experiments_report_has_the_tracers_section(tmp_path) -> None:
    from tests.conftest import ROOT, write
    from tests.conftest import run_cli as govern

    experiment = write(
        ROOT / "runs" / ".test-trace", f"{tmp_path.name}.yaml",
        "kind: experiment\nid: traced\ninstitutions: [../../manifests/senate.yaml]\n"
        "models: [sim/medium]\ntasks: [{name: gsm8k, limit: 3}]\nseeds: [1, 2]\n",
    )  # fmt: skip
    out = tmp_path / "out"
    try:
        ran = govern("run", str(experiment), "--out", str(out), "--workers", "1")
        assert ran.returncode == 0, ran.stderr
        reported = govern("report", str(out))
        assert reported.returncode == 0, reported.stderr
        page = (out / "report" / "report.html").read_text()
        assert "Cascades, elites and extremes" in page and "6 cascades" in page
        assert (out / "report" / "figures" / "ccdf-tce.svg").is_file()
    finally:
        experiment.unlink()


# --- what the tracer refuses, and what a resume rebuilds --------------------------------------


def test_broken_event_graphs_are_refused_at_their_line(tmp_path) -> None:
    from tests.conftest import run_cli as govern

    good = event(1, "propose", "a").model_dump_json()
    cases = {
        "twice": [good, good],
        "self": [event(1, "revise", "a", 1).model_dump_json()],
        "later": [
            event(1, "revise", "a", 2).model_dump_json(),
            event(2, "propose", "b").model_dump_json(),
        ],
        "nan": [good.replace('"time":1.0', '"time":NaN')],
        "type": [good.replace('"propose"', '"gossip"')],
    }
    messages = {
        "twice": "the event id r:1 is used twice",
        "self": "builds on r:1, which is not an earlier event",
        "later": "builds on r:2, which is not an earlier event",
        "nan": "events.jsonl:1: not an event",
        "type": "events.jsonl:1: not an event: type:",
    }
    for name, lines in cases.items():
        run = tmp_path / name
        run.mkdir()
        (run / "events.jsonl").write_text("\n".join(lines) + "\n")
        result = govern("trace", "analyze", str(run))
        assert result.returncode == 1 and messages[name] in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_resume_rebuilds_the_events_of_finished_items_from_the_ledger(tmp_path) -> None:
    """Events edited or lost while a run was stopped are made again from the result lines
    and sanctions the ledger vouches for; the audit then passes on the rebuilt file."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT, user_environment
    from tests.conftest import run_cli as govern

    out = tmp_path / "run"
    args = [sys.executable, "-m", "govern.cli", "run", "manifests/senate.yaml", "--out", str(out)]
    process = subprocess.Popen(args, cwd=ROOT, env=user_environment(None),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    results = out / "results.jsonl"
    while not (results.is_file() and results.read_text().count("\n") >= 3):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    events = out / "events.jsonl"
    original = events.read_text().splitlines()
    forged = json.loads(original[0])
    forged["type"] = "merge"
    events.write_text(json.dumps(forged) + "\n" + '{"forged": true}\n')
    resumed = govern("run", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    lines = events.read_text().splitlines()
    assert "forged" not in events.read_text() and json.loads(lines[0])["type"] != "merge"
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids))
    finished = {json.loads(line)["id"] for line in results.read_text().splitlines()}
    assert {json.loads(line)["item"] for line in lines} == finished
    rebuilt = [json.loads(line) for line in lines]
    kept = [json.loads(line) for line in original]
    assert [e for e in kept if e["item"] in finished] == [e for e in rebuilt if e in kept]
    assert govern("audit", str(out)).returncode == 0
    assert govern("trace", "analyze", str(out)).returncode == 0
