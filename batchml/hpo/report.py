"""The hyper-parameter study as one self-contained HTML page (`batchml hpo report`).

The study's plots come from Optuna's matplotlib backend; a plot that cannot be
drawn is left out with the reason, never failing the run. Importances are drawn
only from enough completed trials with enough parameters varied: fANOVA on a
handful of trials ranks noise, and a ranking on the page would be read as a
finding. batchml adds what Optuna does not draw: the trial timeline per slot
(timeline.py), each trial's duration, and how each trial read its data, with
the I/O-bound ones flagged and what would help them (io_profile.py).
Parameters are written as people write them (3.2e-4, not 0.00032123...).
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
from optuna.trial import FrozenTrial, TrialState

from batchml.hpo.by_site import HEADER, several, site_rows
from batchml.hpo.io_profile import IO_BOUND_FRACTION, IoProfile, profiles
from batchml.hpo.outcome import SITES_ATTR
from batchml.hpo.page import Block, Figure, Report, Section, TableData, png, pyplot
from batchml.hpo.timeline import devices_figure, ran, timeline_figure

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


READING_HEADER = ("trial", "state", "waiting for data", "MB/s", "events/s", "cache_dir",
                  "bytes read from", "")  # fmt: skip


def reading_blocks(study: optuna.Study) -> list[Block]:
    """Each trial's reading, the I/O-bound ones flagged with what would help (none: no blocks)."""
    measured = profiles(study.get_trials(deepcopy=False))
    if not measured:
        return []
    rows = [(str(t.number), t.state.name.lower(), _waiting(p), f"{p.mb_per_s:.1f}",
             f"{p.events_per_s:,.0f}", p.cache(), p.sources(), "I/O-bound" if p.io_bound else "")
            for t, p in measured]  # fmt: skip
    limit = f"{100 * IO_BOUND_FRACTION:.0f} %"
    blocks: list[Block] = [
        f"Each trial records what its RootDatasets read and how long its training loop waited "
        f"for the next batch. A trial that waited more than {limit} of its time (from its "
        "objective's start) is I/O-bound: faster reading would have shortened it. "
        "Rates are per second of the trial.",
        TableData("Data reading per trial", READING_HEADER, rows),
    ]
    advised: dict[tuple[str, ...], list[int]] = {}
    for trial, profile in measured:
        if profile.io_bound:
            advised.setdefault(tuple(profile.advice()), []).append(trial.number)
    for tips, numbers in advised.items():
        which = ", ".join(str(n) for n in numbers)
        blocks.append(f"I/O-bound: trial(s) {which}. What would help: " + "; ".join(tips) + ".")
    if not advised:
        blocks.append(f"No trial waited for data more than {limit} of its time.")
    if any(not p.timed for _, p in measured):
        blocks.append(
            "not timed: batches came through a torch DataLoader with workers; iterate "
            "dataset.loader(num_workers=N) instead to time the loop."
        )
    return [*blocks, waiting_figure(measured)]


def _waiting(profile: IoProfile) -> str:
    return f"{100 * profile.wait_fraction:.0f} %" if profile.timed else "not timed"


def waiting_figure(measured: list[tuple[FrozenTrial, IoProfile]]) -> Figure:
    """Share of each trial's time spent waiting for data, against the I/O-bound line."""
    figure, axes = pyplot().subplots(figsize=(8, 3.5))
    numbers = [t.number for t, _ in measured]
    shares = [100 * p.wait_fraction for _, p in measured]
    colours = ["tab:red" if p.io_bound else "tab:blue" for _, p in measured]
    axes.bar(numbers, shares, color=colours)
    axes.axhline(100 * IO_BOUND_FRACTION, ls="--", color="grey")
    axes.set(xlabel="trial", ylabel="% of the trial waiting for data", ylim=(0, 100))
    return Figure("Time each trial waited for data; red: I/O-bound (above the dashed line)",
                  png(figure))  # fmt: skip


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
    trials, states = study.get_trials(deepcopy=False), study.user_attrs.get(SITES_ATTR) or {}
    if several(trials, states):
        rows = site_rows(trials, states)
        section.blocks.append(TableData("Trials and slots by site", HEADER, rows))
    section.blocks += study_figures(study)
    drawn = (timeline_figure(study), devices_figure(study), duration_figure(study))
    section.blocks += [f for f in drawn if f]
    report.sections.append(section)
    if reading := reading_blocks(study):
        report.sections.append(Section("Data reading", reading))
    return report
