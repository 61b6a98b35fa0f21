"""The hyper-parameter study as one self-contained HTML page (`batchml hpo report`).

The study's plots come from Optuna's matplotlib backend; a plot that cannot be
drawn is left out with the reason, never failing the run. Importances are drawn
only from enough completed trials with enough parameters varied: fANOVA on a
handful of trials ranks noise, and a ranking on the page would be read as a
finding. batchml adds what Optuna does not draw: the trial timeline per slot
(timeline.py) and each trial's duration. Parameters are written as people write
them (3.2e-4, not 0.00032123...).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from batchml.hpo.page import Block, Figure, Report, Section, TableData, png, pyplot
from batchml.hpo.timeline import ran, timeline_figure

IMPORTANCE_MIN_TRIALS = 10  # completed trials before importances are drawn
IMPORTANCE_MIN_VARIED = 2  # parameters that took more than one value among them
IMPORTANCES = "plot_param_importances"

STUDY_PLOTS: tuple[tuple[str, str], ...] = (
    ("plot_optimization_history", "Optimisation history: the objective of each trial"),
    ("plot_intermediate_values", "Reported values per step; pruned trials stop early"),
    (IMPORTANCES, "Hyper-parameter importances (fANOVA)"),
    ("plot_parallel_coordinate", "Parallel coordinates of the finished trials"),
)


def format_value(value: object) -> str:
    """A parameter as a person writes it: floats to two significant digits (3.2e-4, 0.15,
    1200), ints, strings and the rest as they are."""
    if not isinstance(value, float) or not math.isfinite(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return np.format_float_positional(value, precision=2, unique=False, fractional=False,
                                          trim="-")  # fmt: skip
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def format_distribution(distribution: BaseDistribution) -> str:
    """Where a parameter was searched: ``1e-4 to 0.03, log``, ``1 to 4``, ``16, 32, 64``."""
    if isinstance(distribution, CategoricalDistribution):
        return ", ".join(format_value(c) for c in distribution.choices)
    if isinstance(distribution, FloatDistribution | IntDistribution):
        text = f"{format_value(distribution.low)} to {format_value(distribution.high)}"
        if distribution.log:
            text += ", log"
        if distribution.step is not None and distribution.step != 1:
            text += f", step {format_value(distribution.step)}"
        return text
    return str(distribution)


def parameters_table(
    caption: str, params: Mapping[str, object], space: Mapping[str, BaseDistribution]
) -> TableData:
    """A trial's parameters with where each was searched."""
    rows = [(name, format_value(value), format_distribution(space[name]) if name in space else "")
            for name, value in params.items()]  # fmt: skip
    return TableData(caption, ("parameter", "value", "searched"), rows)


def importance_shortfall(study: optuna.Study) -> str | None:
    """Why importances would mean nothing yet, or None when there are enough trials."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = {name for t in complete for name in t.params}
    varied = [n for n in names if len({repr(t.params.get(n)) for t in complete}) > 1]
    if len(complete) >= IMPORTANCE_MIN_TRIALS and len(varied) >= IMPORTANCE_MIN_VARIED:
        return None
    return (
        f"Hyper-parameter importances are not drawn: {len(complete)} completed trial(s) "
        f"with {len(varied)} parameter(s) varied among them; importances need at least "
        f"{IMPORTANCE_MIN_TRIALS} completed trials and {IMPORTANCE_MIN_VARIED} varied "
        "parameters to mean something (run more trials)."
    )


def study_figures(study: optuna.Study) -> list[Block]:
    """The study's plots, with a sentence in place of each one that could not be drawn."""
    from optuna.visualization import matplotlib as plots

    plt = pyplot()
    blocks: list[Block] = []
    for name, caption in STUDY_PLOTS:
        if name == IMPORTANCES and (shortfall := importance_shortfall(study)):
            blocks.append(shortfall)
            continue
        draw: Callable[[optuna.Study], Any] = getattr(plots, name)
        try:
            # Optuna switches matplotlib to its own style for good: keep that to its plots
            with warnings.catch_warnings(), plt.rc_context():
                warnings.simplefilter("ignore")  # "experimental" backend; flat axes of few trials
                axes = draw(study)
        except Exception as exc:  # e.g. nothing finished yet
            blocks.append(f"{caption}: not drawn ({type(exc).__name__}: {exc}).")
            continue
        figure = np.atleast_1d(axes).flat[0].figure
        figure.set_size_inches(8, 4.5)
        blocks.append(Figure(caption, png(figure)))
    return blocks


def duration_figure(study: optuna.Study) -> Figure | None:
    """Seconds per trial against trial number: slow trials and stragglers at a glance."""
    trials = [t for t in ran(study) if t.duration]
    if not trials:
        return None
    figure, axes = pyplot().subplots(figsize=(8, 3.5))
    seconds = [t.duration.total_seconds() for t in trials if t.duration]
    axes.scatter([t.number for t in trials], seconds, s=12)
    axes.set_xlabel("trial")
    axes.set_ylabel("seconds")
    return Figure("Duration of each trial", png(figure))


def trial_counts(study: optuna.Study) -> str:
    """``16 trials: 8 complete, 8 pruned``."""
    states = [t.state.name.lower() for t in study.trials]
    counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    return f"{len(states)} trials: {counts}"


def study_report(study: optuna.Study) -> Report:
    """The page `batchml hpo report` writes: counts, best trial, every plot."""
    report = Report(f"batchml study {study.study_name}")
    report.facts = [("trials", trial_counts(study))]
    section = Section("Study")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete and len(study.directions) == 1:
        best = study.best_trial
        report.facts.append(("best", f"trial {best.number}: {best.value:.6g}"))
        section.blocks.append(parameters_table("Best parameters", best.params, best.distributions))
    section.blocks += study_figures(study)
    section.blocks += [f for f in (timeline_figure(study), duration_figure(study)) if f]
    report.sections.append(section)
    return report
