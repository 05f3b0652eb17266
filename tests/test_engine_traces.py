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
    "qin_han_first_edition": (
        "institutions/first_edition/qin_han.yaml",
        {},
        "decree plan dispatch execution censorate reported",
        "completed",
    ),
    "qin_han": (
        "institutions/qin_han.yaml",
        {},
        "decree plan dispatch execution reported",
        "completed",
    ),
    "qin_han_censor_impeaches_the_dispatch": (
        "institutions/qin_han.yaml",
        {"oversee dispatch": ["impeach"]},
        "decree plan dispatch plan dispatch execution reported",
        "completed",
    ),
    "qin_han_censor_impeaches_once_per_item": (
        "institutions/qin_han.yaml",
        {"oversee plan": ["impeach"], "oversee dispatch": ["impeach"]},
        "decree plan plan dispatch execution reported",
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
    "athens_first_edition_vote_fails_quorum": (
        "institutions/first_edition/athens.yaml",
        {"assembly": [{"*": "?", "citizen#1": "yes", "citizen#2": "yes"}, YES]},
        "probouleuma assembly probouleuma assembly court execution decreed",
        "completed",
    ),
    "athens_first_edition_court_strikes_down": (
        "institutions/first_edition/athens.yaml",
        {"court": ["reject", "approve"]},
        "probouleuma assembly court probouleuma assembly court execution decreed",
        "completed",
    ),
    "athens_first_edition_proposals_run_out": (
        "institutions/first_edition/athens.yaml",
        {"assembly": [NO]},
        "probouleuma assembly probouleuma assembly probouleuma assembly no_decree",
        "rejected",
    ),
    "athens": (
        "institutions/athens.yaml",
        {},
        "council_in_office sortition probouleuma assembly jury_by_lot court execution decreed",
        "completed",
    ),
    "athens_jury_by_lot_strikes_down": (
        "institutions/athens.yaml",
        {"court": [NO, YES]},
        "council_in_office sortition probouleuma assembly jury_by_lot court probouleuma "
        "assembly jury_by_lot court execution decreed",
        "completed",
    ),
    "athens_proposals_run_out": (
        "institutions/athens.yaml",
        {"assembly": [NO]},
        "council_in_office sortition probouleuma assembly probouleuma assembly probouleuma "
        "assembly no_decree",
        "rejected",
    ),
    "venice_elects_a_doge_in_ten_rounds": (
        "institutions/venice.yaml",
        {},
        "doge_in_office lot_30 lot_9 stand_40 elect_40 lot_12 stand_25 elect_25 lot_9_again "
        "stand_45 elect_45 lot_11 stand_41 elect_41 stand_doge elect_doge signoria senate "
        "enactment decreed",
        "completed",
    ),
    "venice_ten_annul_the_doge_s_proposal": (
        "institutions/venice.yaml",
        {"oversee signoria": ["annul"]},
        "doge_in_office lot_30 lot_9 stand_40 elect_40 lot_12 stand_25 elect_25 lot_9_again "
        "stand_45 elect_45 lot_11 stand_41 elect_41 stand_doge elect_doge signoria revision "
        "senate enactment decreed",
        "completed",
    ),
    "venice_forty_not_elected_interregnum": (
        "institutions/venice.yaml",
        {"elect_40": [{"*": "1, 2, 3"}]},  # three candidates reach 7 votes, not forty
        "doge_in_office lot_30 lot_9 stand_40 elect_40 interregnum senate enactment decreed",
        "completed",
    ),
    "sejm": (
        "institutions/sejm.yaml",
        {},
        "proposition sejm constitution enacted",
        "completed",
    ),
    "sejm_liberum_veto_then_confederation": (
        "institutions/sejm.yaml",
        {"sejm": [{"*": "yes", "envoy#3": "no"}]},
        "proposition sejm confederation constitution enacted",
        "completed",
    ),
    "sejm_ordinary_defeat_is_no_veto": (
        "institutions/sejm.yaml",
        {"sejm": [{"*": "abstain", "senator#1": "no", "senator#2": "no", "envoy#1": "yes"}]},
        "proposition sejm proposition sejm proposition sejm nothing_enacted",
        "rejected",
    ),
    "sejm_malformed_ballots_are_no_veto": (
        "institutions/sejm.yaml",
        {"sejm": [{"*": "?"}]},
        "proposition sejm proposition sejm proposition sejm nothing_enacted",
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
    covered = {spec.removesuffix(".yaml").split("/", 1)[1] for spec, *_ in TRACES.values()}
    assert covered == {
        "first_edition/athens",
        "first_edition/qin_han",
        "venice",
        "sejm",
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
