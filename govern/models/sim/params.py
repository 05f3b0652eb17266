"""Simulator parameters: the presets ``sim/strong``, ``sim/medium``, ``sim/weak`` and overrides."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from govern.spec.models import HanoiRate, HanoiShare, SimOverride, check_hanoi_shares


class SimParams(BaseModel):
    """Every knob of a simulated model; the README documents each one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    skill: float = Field(gt=0, lt=1, description="chance of solving an item of average difficulty")
    review_recall: float = Field(
        ge=0, le=1, description="chance a reviewer or voter catches a wrong candidate"
    )
    false_reject: float = Field(
        ge=0, le=1, description="chance a reviewer or voter rejects a right candidate"
    )
    relay_scrutiny: float = Field(
        0.25,
        ge=0,
        le=1,
        description="how closely a relaying stage re-checks the candidate it is handed, "
        "as a share of review_recall",
    )
    relay_corruption: float = Field(
        ge=0,
        le=1,
        description="chance, scaled by the item's error rate, a relay spoils a right answer",
    )
    wrong_correlation: float = Field(
        0.6, ge=0, le=1, description="chance a wrong answer is the item's common wrong answer"
    )
    malformed_rate: float = Field(
        0.02, ge=0, le=1, description="outputs missing the required final line"
    )
    overlong_rate: float = Field(
        0.01, ge=0, le=1, description="outputs that ramble far past a normal length"
    )
    wrong_error_factor: float = Field(
        3.0,
        ge=1,
        description="how much likelier malformed and overlong outputs are when the answer is wrong",
    )
    difficulty_spread: float = Field(
        1.0, ge=0, description="standard deviation of items' latent difficulty, in logits"
    )
    abstain_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="chance a voter abstains, where the vote allows abstaining",
    )
    latency_ms: float = Field(0.0, ge=0, description="simulated time per call")
    latency_jitter: float = Field(0.0, ge=0, le=1, description="+/- share of latency_ms, uniform")
    # A MAKER micro-agent taking one Towers of Hanoi step (models/sim/hanoi.py). sim/maker's
    # hanoi_step_error is the paper's; the rest are modelling assumptions, not measurements.
    hanoi_step_error: HanoiRate = Field(
        0.01, description="chance a sample of an ordinary Hanoi step is wrong"
    )
    hanoi_hard_fraction: HanoiShare = Field(
        0.0002,
        description="share of Hanoi steps that are hard (a seeded set, the same for every "
        "sample of a run)",
    )
    hanoi_hard_error: HanoiRate = Field(
        0.2, description="chance a sample of a hard Hanoi step is wrong"
    )
    hanoi_malformed_share: HanoiShare = Field(
        0.15,
        description="share of wrong Hanoi answers with a fault of format the parser rejects",
    )
    hanoi_overlong_share: HanoiShare = Field(
        0.1,
        description="share of wrong Hanoi answers that ramble past the red flag's 750 tokens",
    )

    # A decomposed item (models/sim/branches.py): a modelling assumption, not a measurement.
    integration_pair_error: float = Field(
        0.04,
        ge=0,
        lt=1,
        description="chance that an integration reconciles one pair of its inputs wrongly "
        "(n inputs are n(n-1)/2 pairs, so one big integration errs more than several small)",
    )

    @model_validator(mode="after")
    def _hanoi_shares(self) -> SimParams:
        check_hanoi_shares(self.hanoi_malformed_share, self.hanoi_overlong_share)
        return self


PRESETS: dict[str, SimParams] = {
    "strong": SimParams(skill=0.92, review_recall=0.85, false_reject=0.03, relay_corruption=0.10),
    "medium": SimParams(skill=0.75, review_recall=0.65, false_reject=0.08, relay_corruption=0.20),
    "weak": SimParams(skill=0.45, review_recall=0.40, false_reject=0.20, relay_corruption=0.35),
    # A MAKER micro-agent at the per-step error the paper measured for the model it chose
    # to run the 20-disk Towers of Hanoi (1 - p = 0.0022); otherwise sim/strong.
    "maker": SimParams(
        skill=0.92,
        review_recall=0.85,
        false_reject=0.03,
        relay_corruption=0.10,
        hanoi_step_error=0.0022,
    ),
}
SIM_PREFIX = "sim/"


FIRM_PREFIX = "firm/"  # govern's built-in firms of the Cournot market: programs, not models


def is_simulated(model: str) -> bool:
    return model.startswith(SIM_PREFIX)


def is_firm_model(model: str) -> bool:
    """A built-in firm of the Cournot market (a learner or an automaton), not a model."""
    return model.startswith(FIRM_PREFIX)


def resolve_sim_params(model: str, overrides: dict[str, SimOverride]) -> SimParams:
    """Parameters of ``sim/NAME`` after the manifest's overrides; KeyError names what is known,
    ValueError what the overrides break together with their base (the manifest's own checks
    see one override at a time, not the preset it changes)."""
    name = model.removeprefix(SIM_PREFIX)
    override = overrides.get(model)
    base_name = override.base if override and override.base else name
    if base_name not in PRESETS:
        known = ", ".join(sorted({*(SIM_PREFIX + p for p in PRESETS), *overrides}))
        raise KeyError(f"unknown simulated model '{model}'; known: {known}")
    params = PRESETS[base_name]
    if override:
        changes = override.model_dump(exclude={"base"}, exclude_none=True)
        try:  # validated again: model_copy would let a broken combination through
            params = SimParams.model_validate({**params.model_dump(), **changes})
        except ValidationError as exc:
            problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ValueError(f"simulated model '{model}': {problems}") from None
    return params
