"""When each trial ran and where: one row per slot, labelled by what the slot is.

Is the cluster busy? Did a slot sit idle between trials? A row is one slot of
one dask worker: a GPU slot is named by its GPU ids, a CPU slot by its number
on the worker (both recorded by the worker when the trial takes the slot).
Workers are numbered per host in the order they took their first trial.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial

from batchml.hpo.outcome import (
    DEVICES_ATTR,
    HOST_ATTR,
    SITE_ATTR,
    SLOT_ATTR,
    STARTED_ATTR,
    WORKER_ATTR,
)
from batchml.hpo.page import Figure, png, pyplot

COLOURS = {"COMPLETE": "tab:green", "PRUNED": "tab:orange", "FAIL": "tab:red"}


def ran(study: optuna.Study) -> list[FrozenTrial]:
    """The trials that started and ended, by start time."""
    trials = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    return sorted(trials, key=lambda t: span(t)[0])


def span(trial: FrozenTrial) -> tuple[float, float]:
    """When the trial held its slot (epoch seconds): from taking it on the worker to the end."""
    assert trial.datetime_start is not None and trial.datetime_complete is not None
    end = trial.datetime_complete.timestamp()
    return float(trial.user_attrs.get(STARTED_ATTR, trial.datetime_start.timestamp())), end


def slot_rows(trials: Sequence[FrozenTrial]) -> dict[int, str]:
    """The row label of each trial (by number), e.g. ``node1 · worker 2 · GPU 0,1`` (with
    ``hpc · `` first when the trials ran on several sites).

    ``trials`` in start order, as :func:`ran` gives them, so worker numbers follow time.
    """
    workers: dict[str, list[str]] = {}
    rows = {}
    for trial in trials:
        attrs = trial.user_attrs
        host = str(attrs.get(HOST_ATTR, "unknown host")).split(".")[0]
        seen = workers.setdefault(host, [])
        if (worker := str(attrs.get(WORKER_ATTR, "?"))) not in seen:
            seen.append(worker)
        devices = attrs.get(DEVICES_ATTR)
        slot = f"GPU {devices}" if devices else f"CPU slot {int(attrs.get(SLOT_ATTR, 0)) + 1}"
        rows[trial.number] = f"{host} · worker {seen.index(worker) + 1} · {slot}"
    sites = {t.number: str(t.user_attrs.get(SITE_ATTR, "?")) for t in trials}
    if len(set(sites.values())) > 1:  # several sites: each row says its site first
        rows = {number: f"{sites[number]} · {row}" for number, row in rows.items()}
    return rows


def timeline_figure(study: optuna.Study) -> Figure | None:
    """One bar per trial, numbered, on the row of its slot, coloured by how it ended."""
    trials = ran(study)
    if not trials:
        return None
    plt = pyplot()
    rows = slot_rows(trials)
    labels = sorted(set(rows.values()))
    start = span(trials[0])[0]
    figure, axes = plt.subplots(figsize=(9, 0.4 * len(labels) + 1.3))
    for trial in trials:
        begin, end = span(trial)
        row = labels.index(rows[trial.number])
        axes.barh(row, end - begin, left=begin - start, height=0.8,
                  color=COLOURS.get(trial.state.name, "tab:gray"), edgecolor="white")  # fmt: skip
        axes.text(begin - start + (end - begin) / 2, row, str(trial.number), ha="center",
                  va="center", fontsize=8)  # fmt: skip
    axes.set_yticks(range(len(labels)), labels)
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the first trial started")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    axes.legend(handles, ["complete", "pruned", "failed"], loc="upper left",
                bbox_to_anchor=(1.01, 1), frameon=False)  # fmt: skip
    kind = "GPU" if any(t.user_attrs.get(DEVICES_ATTR) for t in trials) else "CPU"
    return Figure(
        f"Trial timeline, one row per {kind} slot ([site ·] host · dask worker · slot); "
        "each bar is a trial, labelled with its number",
        png(figure),
    )
