"""The simulator behaves as the README documents: seeded, skill-driven, correlated."""

from __future__ import annotations

import asyncio
from pathlib import Path
from statistics import mean

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from govern.engine.formats import parse_ballot, parse_decision
from govern.models.base import ModelRequest, Oracle
from govern.models.router import ModelRouter
from govern.models.sim.behaviour import item_difficulty, same_answer
from govern.models.sim.client import SimClient
from govern.models.sim.params import PRESETS, resolve_sim_params
from govern.spec.checks import load_checked
from govern.spec.loader import LoadedManifest
from govern.spec.models import SimOverride
from govern.tasks.gsm8k import GSM8K
from tests.conftest import TINY, spec_errors, write

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


# -- the Hanoi settings, set by a manifest ---------------------------------------------------

HANOI_MANIFEST = """\
id: m
institution: inst.yaml
models:
  default: sim/maker
simulator:
{simulator}"""
HANOI_SETTINGS = (
    "hanoi_step_error",
    "hanoi_hard_fraction",
    "hanoi_hard_error",
    "hanoi_malformed_share",
    "hanoi_overlong_share",
)


def hanoi_manifest(project: Path, simulator: str) -> Path:
    write(project, "inst.yaml", TINY)
    return write(project, "m.yaml", HANOI_MANIFEST.format(simulator=simulator))


def test_a_manifest_sets_the_hanoi_settings_of_sim_maker_and_of_a_model_on_it(
    project: Path,
) -> None:
    path = hanoi_manifest(
        project,
        "  sim/maker: {hanoi_step_error: 0.001}\n"
        "  sim/clumsy: {base: maker, hanoi_hard_fraction: 0.01, hanoi_hard_error: 0.3,\n"
        "               hanoi_malformed_share: 0.5, hanoi_overlong_share: 0.5}\n",
    )
    loaded = load_checked(path)
    assert isinstance(loaded, LoadedManifest)
    overrides = loaded.manifest.simulator
    maker = resolve_sim_params("sim/maker", overrides)
    assert maker == PRESETS["maker"].model_copy(update={"hanoi_step_error": 0.001})
    clumsy = resolve_sim_params("sim/clumsy", overrides)
    assert clumsy == PRESETS["maker"].model_copy(
        update={
            "hanoi_hard_fraction": 0.01,
            "hanoi_hard_error": 0.3,
            "hanoi_malformed_share": 0.5,
            "hanoi_overlong_share": 0.5,
        }
    )
    assert clumsy.hanoi_step_error == 0.0022  # the paper's rate, kept from the base


@pytest.mark.parametrize(
    ("setting", "message", "line"),
    [
        ("hanoi_step_error: -0.1", "greater than or equal to 0", 8),
        ("hanoi_step_error: 1", "less than 1", 8),
        ("hanoi_hard_error: 1.5", "less than 1", 8),
        ("hanoi_hard_fraction: -0.01", "greater than or equal to 0", 8),
        ("hanoi_hard_fraction: 1.01", "less than or equal to 1", 8),
        ("hanoi_malformed_share: 2", "less than or equal to 1", 8),
        ("hanoi_overlong_share: -1", "greater than or equal to 0", 8),
        (  # the two shares together: the model's own key
            "hanoi_malformed_share: 0.7, hanoi_overlong_share: 0.4",
            "hanoi_malformed_share + hanoi_overlong_share must be at most 1, not 1.1",
            7,
        ),
    ],
)
def test_bad_hanoi_settings_are_errors_at_their_line(
    project: Path, setting: str, message: str, line: int
) -> None:
    simulator = (
        "  sim/maker: {hanoi_step_error: 0.001}\n  sim/x:\n" + f"    {{base: maker, {setting}}}"
    )
    path = hanoi_manifest(project, simulator)
    (error,) = spec_errors(path)
    assert message in error.message, str(error)
    assert str(error).split(": error: ")[0] == f"{path}:{line}:{error.column}"


def test_one_share_too_many_with_its_base_is_found_before_a_run() -> None:
    """The manifest sees one share; the preset holds the other (0.15 + 0.9 > 1)."""
    overrides = {"sim/maker": SimOverride(hanoi_overlong_share=0.9)}
    with pytest.raises(ValueError, match="simulated model 'sim/maker': hanoi_malformed_share"):
        resolve_sim_params("sim/maker", overrides)
    assert ModelRouter(simulator=overrides).problems(["sim/maker"]) == [
        "simulated model 'sim/maker': hanoi_malformed_share + hanoi_overlong_share must be "
        "at most 1, not 1.05"
    ]


@settings(max_examples=300, deadline=None)
@given(
    setting=st.sampled_from(HANOI_SETTINGS),
    value=st.floats(min_value=-0.5, max_value=1.5, allow_nan=False),
)
def test_an_override_takes_a_hanoi_setting_exactly_when_the_simulator_does(
    setting: str, value: float
) -> None:
    """One set of bounds: a value the manifest accepts the simulator takes, and no other
    (the other share at 0, so that only the setting's own bounds decide)."""
    other_share = {"hanoi_malformed_share": 0.0, "hanoi_overlong_share": 0.0}
    given_values = {**other_share, setting: value} if setting in other_share else {setting: value}
    try:
        SimOverride.model_validate(given_values)
        overridden = True
    except ValidationError:
        overridden = False
    try:
        PRESETS["maker"].model_validate({**PRESETS["maker"].model_dump(), **given_values})
        simulated = True
    except ValidationError:
        simulated = False
    assert overridden == simulated
