"""The simulator behaves as the README documents: seeded, skill-driven, correlated."""

from __future__ import annotations

import asyncio
from statistics import mean

from govern.engine.formats import parse_ballot, parse_decision
from govern.models.base import ModelRequest, Oracle
from govern.models.sim.behaviour import item_difficulty, same_answer
from govern.models.sim.client import SimClient
from govern.models.sim.params import PRESETS, resolve_sim_params
from govern.spec.models import SimOverride
from govern.tasks.gsm8k import GSM8K

TASK = GSM8K()


def ask(
    model: str,
    act: str,
    item: int,
    *,
    candidate: str | None = None,
    seed: int = 0,
    agent: str = "a#1",
    decisions: tuple[str, ...] = (),
) -> str:
    params = PRESETS[model.removeprefix("sim/")]
    oracle = Oracle(
        item_id=f"item-{item}",
        gold="40",
        act=act,
        stage="s",
        agent=agent,
        visit=1,
        candidate=candidate,
        decisions=decisions,
        run_seed=seed,
    )
    request = ModelRequest(
        model=model, messages=[{"role": "user", "content": "q"}], oracle=oracle, seed=seed
    )
    return asyncio.run(SimClient(params).complete(request)).text


def solve_rate(model: str, items: int = 600) -> float:
    return mean(TASK.parse_answer(ask(model, "solve", i)) == "40" for i in range(items))


def test_same_request_same_reply_and_a_different_seed_differs() -> None:
    assert ask("sim/medium", "solve", 1) == ask("sim/medium", "solve", 1)
    replies = {ask("sim/medium", "solve", i, seed=s) for i in range(30) for s in (0, 1)}
    assert len(replies) > 2


def test_accuracy_follows_skill() -> None:
    strong, medium, weak = (solve_rate(f"sim/{m}") for m in ("strong", "medium", "weak"))
    assert strong > medium > weak
    assert abs(strong - PRESETS["strong"].skill) < 0.08
    assert abs(weak - PRESETS["weak"].skill) < 0.08


def test_hard_items_are_hard_for_every_model() -> None:
    hard = [i for i in range(400) if item_difficulty(f"item-{i}", 0, 1.0) > 1.5]
    easy = [i for i in range(400) if item_difficulty(f"item-{i}", 0, 1.0) < -1.5]

    def rate(ids: list[int]) -> float:
        return mean(TASK.parse_answer(ask("sim/strong", "solve", i)) == "40" for i in ids)

    assert hard and easy and rate(hard) < rate(easy)


def test_wrong_answers_are_correlated_across_agents() -> None:
    shared = 0
    for item in range(300):
        answers = [
            TASK.parse_answer(ask("sim/weak", "solve", item, agent=f"a#{k}")) for k in range(2)
        ]
        if all(a is not None and a != "40" for a in answers):
            shared += answers[0] == answers[1]
    assert shared > 20  # independent random wrong answers would almost never agree


def test_reviewers_catch_wrong_candidates_at_their_recall() -> None:
    decisions = ("approve", "reject")
    caught = mean(
        parse_decision(
            ask("sim/strong", "review", i, candidate="41", decisions=decisions), decisions
        )
        == "reject"
        for i in range(600)
    )
    false = mean(
        parse_decision(
            ask("sim/strong", "review", i, candidate="40", decisions=decisions), decisions
        )
        == "reject"
        for i in range(600)
    )
    assert abs(caught - PRESETS["strong"].review_recall) < 0.06
    assert false < 0.08


def test_voters_say_yes_to_right_candidates() -> None:
    yes = mean(
        parse_ballot(ask("sim/medium", "vote", i, candidate="40")) == "yes" for i in range(400)
    )
    assert yes > 0.85


def test_malformed_outputs_appear_and_are_likelier_when_wrong() -> None:
    texts = [(ask("sim/weak", "solve", i), i) for i in range(3000)]
    wrong_flexible = [t for t, _ in texts if "40" not in t]
    malformed = [t for t, _ in texts if TASK.parse_answer(t) is None]
    assert malformed
    malformed_when_wrong = sum(TASK.parse_answer(t) is None for t in wrong_flexible)
    assert malformed_when_wrong / len(wrong_flexible) > len(malformed) / len(texts)


def test_manifest_overrides_and_new_simulated_models() -> None:
    overrides = {
        "sim/medium": SimOverride(latency_ms=500),
        "sim/tiny": SimOverride(base="weak", skill=0.2),
    }
    assert resolve_sim_params("sim/medium", overrides).latency_ms == 500
    assert resolve_sim_params("sim/tiny", overrides).skill == 0.2
    assert resolve_sim_params("sim/tiny", overrides).review_recall == PRESETS["weak"].review_recall


def test_answers_compare_as_numbers() -> None:
    assert same_answer("18", "18.0") and not same_answer("18", "19") and not same_answer(None, "1")
