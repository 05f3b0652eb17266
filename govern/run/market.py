"""One repeated Cournot market as one item of a run (task ``cournot``).

The manifest's institution names the firms: its seats, in order, are the market's firms
(``firm#1``, ``firm#2``), and each seat's model says what runs it:

- ``firm/q-learning``: tabular Q-learners (``tasks/cournot/learners.py``), trained as a
  pair -- under the market's regime, when it has one -- before the evaluated rounds, and
  still learning from realised profit while they play; trained pairs are kept
  (``tasks/cournot/training.py``);
- ``firm/nash`` and ``firm/division-colluder``: the reference automata;
- any other name: a model firm through the model layer (``sim/...`` or a litellm model),
  prompted every round (``tasks/cournot/model_firms.py``); the constitutional regime's
  text goes into its prompt; a failed call is printed on the console. With the manifest's
  ``market: {channel: true}`` model firms may message each other (and only model firms
  may sit in such a market: the built-in ones cannot read a message).

The Controller governs the rounds when the overlay weighs the market's signals: its
verdicts fine and suspend firms, and everything it does is written to the ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from govern.engine.context import models_used
from govern.governance.oracle import is_market_regime
from govern.governance.rounds import TrainingRegime
from govern.models.sim.params import is_firm_model
from govern.spec.models import Governance, Manifest
from govern.tasks.base import TaskItem
from govern.tasks.cournot.firms import DivisionColluder, Firm, NashFirm
from govern.tasks.cournot.learners import LearningConfig, Session
from govern.tasks.cournot.market import MarketParams
from govern.tasks.cournot.measures import RunMeasures
from govern.tasks.cournot.play import Play, play_async
from govern.tasks.cournot.training import (
    TrainedPairs,
    default_store,
    market_seed,
    q_shape,
    trained_pairs,
)

if TYPE_CHECKING:
    from govern.run.runner import PreparedRun

LEARNERS = "firm/q-learning"
AUTOMATA: dict[str, Callable[[], Firm]] = {
    "firm/nash": NashFirm,
    "firm/division-colluder": DivisionColluder,
}
FIRM_MODELS = frozenset({LEARNERS, *AUTOMATA})


def firm_models_problems(
    models: dict[str, str], task: str, firms: int, channel: bool = False
) -> list[str]:
    """What is wrong with these seats' models for a market of ``firms`` firms (``models``:
    seat -> model), with or without a message ``channel`` between them; for any other
    task, a firm model is itself the problem."""
    named = sorted({m for m in models.values() if is_firm_model(m)})
    if task != "cournot":
        return (
            [
                f"{', '.join(named)}: built-in firms of the Cournot market, which cannot "
                f"answer {task}; give a model name"
            ]
            if named
            else []
        )
    problems = [
        f"no built-in firm '{m}'; built-in firms: {', '.join(sorted(FIRM_MODELS))}"
        for m in named
        if m not in FIRM_MODELS
    ]
    if len(models) != firms:
        problems.append(
            f"the market has {firms} firms, but the institution has {len(models)} seats: "
            "one seat a firm"
        )
    learners = [seat for seat, m in models.items() if m == LEARNERS]
    if learners and len(learners) != len(models):
        problems.append(
            f"{LEARNERS} firms train as a pair: give every seat {LEARNERS} (now only "
            f"{', '.join(learners)})"
        )
    if channel and named:
        problems.append(
            f"market: {{channel: true}} lets firms message each other, but built-in firms "
            f"cannot read a message ({', '.join(named)}): give every seat a model "
            "(sim/... or a litellm model), or drop the channel"
        )
    return problems


async def play_market(run: PreparedRun, item: TaskItem) -> dict[str, Any]:
    """Play one market of the run and return its result line."""
    clock = time.perf_counter()
    context, manifest = run.context, run.manifest
    market: MarketParams = run.task.card.market  # type: ignore[attr-defined]
    controller = context.controller
    assert controller is not None
    agents = list(controller.agents)
    models = {agent: context.model_for(agent) for agent in agents}
    seed = market_seed(context.seed, item.id)
    governance = manifest.governance if is_market_regime(manifest.governance) else None
    training: dict[str, Any] | None = None
    if all(m == LEARNERS for m in models.values()):
        session, cached = await asyncio.to_thread(_trained, run, market, governance, seed)
        firms: list[Any] = session.firms(market, LearningConfig())
        training = {
            "periods": session.periods,
            "converged": session.converged,
            "seconds": round(session.seconds, 3),
            "cached": cached,
            "under_regime": governance is not None,
        }
    else:
        firms = [_firm(run, agent, model, market, item, seed) for agent, model in models.items()]
    regime = controller.market_regime(item.id, market, agents)
    played = await play_async(market, firms, seed=seed, fines=regime)
    return market_record(
        item,
        played,
        models,
        firms,
        training,
        regime.sanctions if regime is not None else [],
        time.perf_counter() - clock,
        run.simulated,
    )


def _trained(
    run: PreparedRun, market: MarketParams, governance: Governance | None, seed: int
) -> tuple[Session, bool]:
    store = TrainedPairs(default_store())
    config = LearningConfig()
    kept = store.get(store.key(market, config, governance, seed), seed, q_shape(market, config))
    if kept is not None:
        return kept, True
    under = "under the regime" if governance is not None else "ungoverned"
    progress = _training_progress(run.report, f"a pair of learning firms {under}")
    make = (lambda n: TrainingRegime(governance, market, n)) if governance is not None else None
    (session,), _ = trained_pairs(market, config, governance, [seed], make, store, progress)
    return session, False


def learner_seeds(manifest: Manifest, run_seed: int, items: Sequence[str]) -> list[int]:
    """The seeds of the learner pairs a run of ``manifest`` trains for ``items`` (none when
    its firms are not all learners)."""
    if models_used(manifest.institution, manifest.models) != {LEARNERS}:
        return []
    return [market_seed(run_seed, item) for item in items]


def pretrain(
    market: MarketParams,
    runs: Sequence[tuple[Manifest, int, Sequence[str]]],
    report: Callable[[str], None] | None = None,
) -> int:
    """Train side by side every learner pair that these runs (manifest, run seed, items)
    will play and the store lacks, one batch per regime, so that an experiment's cells
    find their pairs trained instead of each training its own; the pairs trained."""
    store = TrainedPairs(default_store())
    groups: dict[str, tuple[Governance | None, set[int]]] = {}
    for manifest, run_seed, items in runs:
        seeds = learner_seeds(manifest, run_seed, items)
        if not seeds:
            continue
        governance = manifest.governance if is_market_regime(manifest.governance) else None
        key = "none" if governance is None else governance.model_dump_json()
        groups.setdefault(key, (governance, set()))[1].update(seeds)
    trained = 0
    config = LearningConfig()
    shape = q_shape(market, config)
    for governance, seeds in groups.values():
        ordered = sorted(seeds)
        keys = [store.key(market, config, governance, seed) for seed in ordered]
        missing = [
            seed
            for seed, key in zip(ordered, keys, strict=True)
            if store.get(key, seed, shape) is None
        ]
        if not missing:
            continue
        under = "under its regime" if governance is not None else "ungoverned"
        progress = _training_progress(report, f"{len(missing)} learner pairs {under}")
        make = (lambda n, g=governance: TrainingRegime(g, market, n)) if governance else None
        trained_pairs(market, config, governance, missing, make, store, progress)
        trained += len(missing)
    return trained


def _training_progress(
    report: Callable[[str], None] | None, what: str
) -> Callable[[int, int], None] | None:
    """What ``train`` calls after each block: a line every 100,000 periods, for a console."""
    if report is None:
        return None
    report(f"training {what} (kept once trained) ...")
    started = time.perf_counter()

    def progress(periods: int, learning: int) -> None:
        if periods % 100_000 == 0:
            report(
                f"training {what}: {periods:,} periods, {learning} still learning, "
                f"{time.perf_counter() - started:.0f} s"
            )

    return progress


def _firm(
    run: PreparedRun, agent: str, model: str, market: MarketParams, item: TaskItem, seed: int
) -> Firm:
    if model in AUTOMATA:
        return AUTOMATA[model]()
    from govern.tasks.cournot.model_firms import ModelFirm

    options = run.manifest.market
    return ModelFirm(
        agent=agent,
        model=model,
        router=run.context.router,
        market=market,
        item=item.id,
        seed=run.context.seed,
        constitution=options.constitution if options else None,
        controller=run.context.controller,
        parsing=run.context.parsing,
        on_unparsable=options.on_unparsable if options else "previous",
        channel=options.channel if options else False,
    )


def market_record(
    item: TaskItem,
    played: Play,
    models: dict[str, str],
    firms: list[Any],
    training: dict[str, Any] | None,
    sanctions: list[dict[str, Any]],
    latency: float,
    simulated: bool,
) -> dict[str, Any]:
    """The market's result line: the usual keys of a result (nothing to score: no gold, no
    prediction) and ``market``, what the market is judged by."""
    measures = RunMeasures.of(played.market, played.quantities)
    turns = [
        {"agent": firm.agent, "stage": "market", "act": "produce", **asdict(turn)}
        for firm in firms
        for turn in getattr(firm, "turns", [])
    ]
    failures = [str(f) for firm in firms for f in getattr(firm, "failures", [])]
    rounds = len(played.quantities)
    return {
        "id": item.id,
        "gold": None,
        "prediction_strict": None,
        "prediction_flexible": None,
        "correct_strict": False,
        "correct_flexible": False,
        "outcome": "played",
        "path": [],
        "calls": len(turns),
        "failed_attempts": 0,
        "prompt_tokens": sum(t["prompt_tokens"] for t in turns),
        "completion_tokens": sum(t["completion_tokens"] for t in turns),
        # unknown when any call's price is (as an answering item's cost is)
        "cost": None if any(t["cost"] is None for t in turns) else sum(t["cost"] for t in turns),
        "latency": round(latency, 6),
        "unparsable": sum(getattr(firm, "unparsable", 0) for firm in firms),
        "reasks": sum(getattr(firm, "reasks", 0) for firm in firms),
        "errors": failures,
        "simulated": simulated,
        "final_text": None,
        "turns": turns,
        "market": {
            "seed": int(played.seed),
            "rounds": rounds,
            "firms": models,
            "tier": measures.tier,
            "hhi": round(measures.hhi, 6),
            "cv": round(measures.cv, 6),
            "hhi_excess": round(measures.hhi_excess, 6),
            "cv_excess": round(measures.cv_excess, 6),
            "gross_profit_per_round": _list(played.gross_profits.mean(axis=0)),
            "profit_per_round": _list(played.profits.mean(axis=0)),
            "consumer_surplus_per_round": round(measures.consumer_surplus, 4),
            "fines": _list(played.fines.sum(axis=0)),
            "suspended_rounds": [int(n) for n in played.suspended.sum(axis=0)],
            "sanctions": len(sanctions),
            "unparsable": [int(getattr(firm, "unparsable", 0)) for firm in firms],
            "messages": [int(getattr(firm, "sent", 0)) for firm in firms],
            "training": training,
            "quantities": np.round(played.quantities, 4).tolist(),
        },
    }


def _list(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in values]
