"""Golden traces: a scripted simulator drives each institution down a fixed stage path."""

from __future__ import annotations

import pytest

from govern.models.sim.scripted import ScriptedClient
from tests.engine_harness import institution_at, run_item, run_scripted

YES, NO, INVALID = {"*": "yes"}, {"*": "no"}, {"*": "?"}

# (spec, script, expected stage path, expected outcome)
TRACES = {
    "bare": ("institutions/bare.yaml", {}, "solve done", "completed"),
    "bare_unparsable_retry_hits_its_bound": (
        "institutions/bare.yaml",
        {"solve": ["!"]},
        "solve solve done",
        "no_answer",  # both answers unparsable: the item completed with no answer
    ),
    "qin_han": (
        "institutions/qin_han.yaml",
        {},
        "decree plan dispatch execution censorate reported",
        "completed",
    ),
    "mongol": (
        "institutions/mongol.yaml",
        {},
        "order tumen_relay mingghan_relay jaghun_relay arban_execution carried_out",
        "completed",
    ),
    "soviet": (
        "institutions/soviet.yaml",
        {},
        "plan deployment allocation republics ratification ratified",
        "completed",
    ),
    "tang_review_rejects_then_approves": (
        "institutions/tang.yaml",
        {"review": ["reject", "approve"]},
        "draft review draft review dispatch ministries reconcile promulgated",
        "completed",
    ),
    "tang_send_back_hits_its_bound": (
        "institutions/tang.yaml",
        {"review": ["reject"]},
        "draft review draft review draft review dispatch ministries reconcile promulgated",
        "completed",
    ),
    "athens_vote_fails_quorum": (
        "institutions/athens.yaml",
        {"assembly": [{"*": "?", "citizen#1": "yes", "citizen#2": "yes"}, YES]},
        "probouleuma assembly probouleuma assembly court execution decreed",
        "completed",
    ),
    "athens_court_strikes_down": (
        "institutions/athens.yaml",
        {"court": ["reject", "approve"]},
        "probouleuma assembly court probouleuma assembly court execution decreed",
        "completed",
    ),
    "athens_proposals_run_out": (
        "institutions/athens.yaml",
        {"assembly": [NO]},
        "probouleuma assembly probouleuma assembly probouleuma assembly no_decree",
        "rejected",
    ),
    "us_veto_and_override": (
        "institutions/us_federal.yaml",
        {"presidential_review": ["veto"], "veto_override": [YES]},
        "committee_draft house_vote senate_vote presidential_review veto_override "
        "agency_execution judicial_review law_stands",
        "completed",
    ),
    "us_veto_sustained": (
        "institutions/us_federal.yaml",
        {"presidential_review": ["veto"], "veto_override": [NO]},
        "committee_draft house_vote senate_vote presidential_review veto_override vetoed",
        "rejected",
    ),
    "us_judicial_invalidation_sends_the_bill_back": (
        "institutions/us_federal.yaml",
        {"judicial_review": ["reject", "approve"]},
        "committee_draft house_vote senate_vote presidential_review agency_execution "
        "judicial_review committee_draft house_vote senate_vote presidential_review "
        "agency_execution judicial_review law_stands",
        "completed",
    ),
    "us_senate_tie_broken_by_the_vice_president": (
        "institutions/us_federal.yaml",
        {
            "senate_vote": [
                {"senator#1": "yes", "senator#2": "no", "senator#3": "?", "vice_president#1": "no"},
                YES,
            ]
        },
        "committee_draft house_vote senate_vote committee_draft house_vote senate_vote "
        "presidential_review agency_execution judicial_review law_stands",
        "completed",
    ),
    "edo_compliance_sanctions_then_approves": (
        "institutions/edo.yaml",
        {"compliance": ["reject", "approve"]},
        "directive domains compliance domains compliance council settled",
        "completed",
    ),
    "senate": (
        "manifests/senate.yaml",
        {},
        "motion debate division intercession enactment enacted",
        "completed",
    ),
    "senate_veto_and_bounded_reproposal": (
        "manifests/senate.yaml",
        {"intercession": ["veto"]},
        "motion debate division intercession motion debate division intercession "
        "motion debate division intercession abandoned",
        "rejected",
    ),
    "senate_division_without_quorum_twice": (
        "manifests/senate.yaml",
        {"division": [INVALID | {"senator#1": "yes"}]},
        "motion debate division division abandoned",
        "rejected",
    ),
}


@pytest.mark.parametrize(("spec", "script", "path", "outcome"), TRACES.values(), ids=TRACES)
def test_golden_trace(spec: str, script: dict, path: str, outcome: str) -> None:
    state = run_scripted(spec, script)
    assert " ".join(state["path"]) == path
    assert state["outcome"] == outcome


def test_every_shipped_institution_has_a_golden_trace() -> None:
    covered = {spec.split("/")[-1].removesuffix(".yaml") for spec, *_ in TRACES.values()}
    assert covered == {
        "bare",
        "qin_han",
        "mongol",
        "soviet",
        "tang",
        "athens",
        "us_federal",
        "edo",
        "senate",
    }


def test_real_outputs_reach_the_next_agent_and_the_chair_casts_a_ballot() -> None:
    client = ScriptedClient(
        {
            "committee_draft": ["7"],
            "senate_vote": [
                {"senator#1": "yes", "senator#2": "no", "senator#3": "?", "vice_president#1": "yes"}
            ],
        }
    )
    state = run_item(institution_at("institutions/us_federal.yaml"), client)
    president = next(r for r in client.requests if r.oracle.stage == "presidential_review")
    system, user = president.messages
    assert system["role"] == "system" and "You are the President" in system["content"]
    content = user["content"]
    assert "## The motion\nThe answer proposed is 7 (from committee_draft, by committee#1)" in (
        content
    )
    # the committee's working is shown as a report: its answer line restated, not copyable
    assert "Worked it out.\n(answer stated: 7)" in content and "#### 7" not in content
    assert "DECISION: <word>" in content and "approve, veto" in content
    assert content.rstrip().endswith(
        "For example, to approve, the last line would be: DECISION: approve"
    )
    chair = [t for t in state["turns"] if t.get("chair")]
    assert [t["agent"] for t in chair] == ["vice_president#1"]
    assert state["path"][3] == "presidential_review"


def test_rejection_reasons_reach_the_drafter() -> None:
    state = run_scripted("institutions/tang.yaml", {"review": ["reject", "approve"]})
    second_draft = [t for t in state["turns"] if t["stage"] == "draft"][1]
    assert second_draft["act"] == "revise"


def test_unparsable_outputs_are_counted() -> None:
    state = run_scripted("institutions/bare.yaml", {"solve": ["!", "!"]})
    assert state["unparsable"] == 2 and state["candidate"] is None
