"""MAKER's first-to-ahead-by-k voter: hand-computed decisions, the first-to-ahead rule against
a one-at-a-time reference, red flags that never count, concurrency of a round's draws, and
proof that the voter has no way to see a right answer."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from collections import Counter
from collections.abc import Hashable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from govern.maker import voting
from govern.maker.voting import (
    PAPER_RED_FLAGS,
    Decision,
    RedFlags,
    Sample,
    Undecided,
    Voting,
    vote,
    vote_sync,
)
from govern.spec.models import MAX_VOTING_ROUNDS

LONG = "long"  # an outcome over the token limit
UNPARSABLE = "unparsable"  # an outcome without a parsed candidate
POISON = "poison"  # the candidate a too-long sample carries: it must never be counted


def answer(outcome: str) -> Sample[str]:
    """The sample an outcome stands for: a vote for the outcome or a red-flagged sample."""
    if outcome == LONG:
        return Sample(text="…" * 800, output_tokens=800, candidate=POISON)
    if outcome == UNPARSABLE:
        return Sample(text="I think the answer is", output_tokens=5, candidate=None)
    return Sample(text=f"move {outcome}", output_tokens=5, candidate=outcome)


class Script:
    """A deterministic sampler: sample i is outcome i (cycling), with every call recorded."""

    def __init__(self, outcomes: list[str]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[float, int]] = []

    def __call__(self, temperature: float, index: int) -> Sample[str]:
        self.calls.append((temperature, index))
        return answer(self.outcomes[index % len(self.outcomes)])

    async def drawn(self, temperature: float, index: int) -> Sample[str]:
        return self(temperature, index)


def same(candidate: str) -> Hashable:
    return candidate


def decide(outcomes: list[str], config: Voting, step: int = 0) -> Decision[str]:
    """The sync decision, checked to be exactly the async one."""
    decision = vote_sync(Script(outcomes), same, config, step=step)
    assert asyncio.run(vote(Script(outcomes).drawn, same, config, step=step)) == decision
    return decision


def test_hand_computed_decision_with_a_too_long_sample() -> None:
    # k=2. Round 1 draws 2: a, b (tied). Round 2 draws 2: too long, a (a leads by 1).
    # Round 3 draws 1: a (a leads by 2).
    decision = decide(["a", "b", LONG, "a", "a"], Voting(k=2))
    assert decision.candidate == "a" and decision.key == "a"
    stats = decision.stats
    assert stats.samples == 5 and stats.valid_votes == 4 and stats.rounds == 3
    assert stats.red_flags == {"too_long": 1, "format": 0}
    assert stats.votes == {"a": 3, "b": 1}
    assert stats.collision


def test_hand_computed_decision_with_an_unparsable_sample() -> None:
    # k=3. Round 1 draws 3: a, unparsable, a (a leads by 2). Round 2 draws 1: a.
    stats = decide(["a", UNPARSABLE, "a", "a"], Voting(k=3)).stats
    assert (stats.samples, stats.valid_votes, stats.rounds) == (4, 3, 2)
    assert stats.red_flags == {"too_long": 0, "format": 1}
    assert stats.votes == {"a": 3} and not stats.collision


def test_a_fixed_batch_is_read_only_up_to_the_deciding_sample() -> None:
    # k=2, rounds of 4 after the first 2: a, b | a, a (a leads by 2 here), b, b unread.
    stats = decide(["a", "b", "a", "a", "b", "b"], Voting(k=2, batch_size=4)).stats
    assert (stats.samples, stats.valid_votes, stats.rounds) == (6, 4, 2)
    assert stats.votes == {"a": 3, "b": 1}


def test_unanimous_first_round_decides_with_k_samples() -> None:
    stats = decide(["c"], Voting(k=3)).stats
    assert (stats.samples, stats.valid_votes, stats.rounds, stats.collision) == (3, 3, 1, False)


def test_votes_are_keyed_and_the_first_sample_of_the_winning_key_is_returned() -> None:
    outcomes = ["Move A", " move a", "MOVE A"]
    decision = vote_sync(Script(outcomes), lambda text: text.strip().lower(), Voting(k=3))
    assert decision.key == "move a" and decision.candidate == "Move A"
    assert decision.stats.votes == {"move a": 3}


def test_undecided_after_max_rounds_names_the_step_and_the_votes() -> None:
    script = Script(["a", "b"])
    with pytest.raises(Undecided, match=r"step 17: .* after 3 rounds \(6 samples\); votes") as e:
        vote_sync(script, same, Voting(k=2, max_rounds=3), step=17)
    assert "'a': 3, 'b': 3" in str(e.value)
    assert (e.value.step, e.value.rounds, e.value.votes) == (17, 3, {"a": 3, "b": 3})
    assert len(script.calls) == 6


def test_all_red_flagged_is_undecided_with_no_valid_votes() -> None:
    with pytest.raises(Undecided, match=r"step 4: .*votes \{none valid\}"):
        vote_sync(Script([LONG, UNPARSABLE]), same, Voting(k=1, max_rounds=5), step=4)


def test_the_first_sample_has_first_temperature_and_every_later_one_temperature() -> None:
    script = Script(["a", "b", UNPARSABLE, "b", "a", "a", "a"])
    config = Voting(k=2, first_temperature=0.0, temperature=0.7)
    vote_sync(script, same, config)
    assert script.calls[0] == (0.0, 0)
    assert all(temperature == 0.7 for temperature, _ in script.calls[1:])
    assert [index for _, index in script.calls] == list(range(len(script.calls)))


def test_the_first_k_samples_are_drawn_together_and_later_rounds_as_needed() -> None:
    in_flight = 0
    rounds: list[list[int]] = []  # the indices drawn while each round was in flight
    script = Script(["a", "b", "c", "a", "a", "a", "a"])

    async def sampler(temperature: float, index: int) -> Sample[str]:
        nonlocal in_flight
        if in_flight == 0:
            rounds.append([])
        in_flight += 1
        rounds[-1].append(index)
        await asyncio.sleep(0)  # every other draw of the round starts before this one ends
        in_flight -= 1
        return script(temperature, index)

    decision = asyncio.run(vote(sampler, same, Voting(k=3)))
    # a, b, c: a leads by 0, needs 3; a, a, a: a leads by 3.
    assert rounds == [[0, 1, 2], [3, 4, 5]]
    assert decision.key == "a" and decision.stats.rounds == 2


def test_a_wrong_majority_wins_unrepaired() -> None:
    # The true move is "0->2"; the sampler mostly says "0->1", and the samples that say "0->2"
    # are too long: the voter returns the wrong move, because it cannot know better.
    outcomes = ["0->1", "0->2", "0->1", "0->1", "0->1"]
    samples = [answer(o) for o in outcomes]
    samples[1] = Sample(text="…", output_tokens=900, candidate="0->2")

    def sampler(temperature: float, index: int) -> Sample[str]:
        return samples[index % len(samples)]

    decision = vote_sync(sampler, same, Voting(k=3))
    assert decision.candidate == "0->1"
    assert "0->2" not in decision.stats.votes


SOURCE_OF_TRUTH = re.compile(
    r"check|truth|true_|gold|oracle|correct|expect|answer|solution|reference|label|ground",
    re.IGNORECASE,
)


def test_the_voter_has_no_way_to_see_a_right_answer() -> None:
    """Structural: no parameter, field, name or import of the module refers to a checker, a
    true step or gold data, and the module imports nothing of the project but the language's
    settings (no task module, hence no checker, is reachable from it)."""
    assert list(inspect.signature(vote).parameters) == [
        "sample",
        "key",
        "voting",
        "red_flags",
        "step",
        "concurrent",
    ]
    assert (
        list(inspect.signature(vote_sync).parameters)
        == list(inspect.signature(vote).parameters)[:-1]
    )
    assert set(Voting.model_fields) == {
        "k",
        "first_temperature",
        "temperature",
        "max_rounds",
        "batch_size",
    }
    assert set(RedFlags.model_fields) == {"max_output_tokens"}
    tree = ast.parse(inspect.getsource(voting))
    names: set[str] = set()
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            names.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            names.update(alias.name for alias in node.names)
    assert names and not {name for name in names if SOURCE_OF_TRUTH.search(name)}
    assert {module.split(".")[0] for module in imported if module != "govern.spec.models"} <= {
        "__future__",
        "asyncio",
        "collections",
        "dataclasses",
        "typing",
    }


def test_config_is_checked() -> None:
    with pytest.raises(ValidationError):
        Voting(k=0)
    with pytest.raises(ValidationError):
        Voting(k=3, max_rounds=MAX_VOTING_ROUNDS + 1)
    with pytest.raises(ValidationError):
        Voting(k=3, checker="anything")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        RedFlags(format=False)  # type: ignore[call-arg]
    assert Voting(k=1).first_temperature == 0.0 and Voting(k=1).temperature == 0.1
    assert PAPER_RED_FLAGS.max_output_tokens == 750


outcomes_strategy = st.lists(
    st.sampled_from(["a", "b", "c", LONG, UNPARSABLE]), min_size=1, max_size=30
)
configs = st.builds(
    Voting,
    k=st.integers(1, 4),
    max_rounds=st.integers(1, 8),
    batch_size=st.none() | st.integers(1, 5),
)


def leads_by(counts: Counter[str], k: int) -> str | None:
    """The key leading every other by k, if any."""
    ranked = counts.most_common(2)
    if not ranked:
        return None
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    return ranked[0][0] if ranked[0][1] - runner_up >= k else None


@settings(max_examples=400, deadline=None)
@given(outcomes=outcomes_strategy, config=configs, step=st.integers(0, 2**20))
def test_decisions_are_first_to_ahead_by_k_among_valid_votes(
    outcomes: list[str], config: Voting, step: int
) -> None:
    try:
        decision = decide(outcomes, config, step=step)
    except Undecided as undecided:
        assert f"step {step}:" in str(undecided) and undecided.rounds == config.max_rounds
        drawn = (outcomes * undecided.samples)[: undecided.samples]
        valid = [o for o in drawn if o not in (LONG, UNPARSABLE)]
        assert all(leads_by(Counter(valid[:n]), config.k) is None for n in range(len(valid) + 1))
        assert Counter(valid) == undecided.votes
        return
    stats = decision.stats
    votes = Counter(stats.votes)
    assert POISON not in votes  # a too-long sample never counts, whatever it carries
    assert votes[decision.key] - max((n for key, n in votes.items() if key != decision.key),
                                     default=0) >= config.k  # fmt: skip
    assert sum(votes.values()) == stats.valid_votes
    # The one-at-a-time reference: read samples in order, red flags skipped, until one key
    # leads by k; the voter must have read exactly those samples and decided alike.
    reference: Counter[str] = Counter()
    flags = Counter({"too_long": 0, "format": 0})
    index = 0
    while leads_by(reference, config.k) is None:
        outcome = outcomes[index % len(outcomes)]
        if outcome == LONG:
            flags["too_long"] += 1
        elif outcome == UNPARSABLE:
            flags["format"] += 1
        else:
            reference[outcome] += 1
        index += 1
    assert leads_by(reference, config.k) == decision.key
    assert votes == reference and stats.red_flags == dict(flags)
    read = stats.valid_votes + sum(stats.red_flags.values())
    assert read == index
    if config.batch_size is None:  # rounds draw only what could decide: nothing goes unread
        assert stats.samples == read
    first_two = [o for o in (outcomes * index)[:index] if o not in (LONG, UNPARSABLE)][:2]
    assert stats.collision == (len(first_two) == 2 and first_two[0] != first_two[1])
