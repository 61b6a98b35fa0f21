"""When each trial ran and where: one row per slot, labelled by what the slot is.

Is the cluster busy? Did a slot sit idle between trials? A row is one slot of
one dask worker: a GPU slot is named by its GPU ids, a CPU slot by its number
on the worker (both recorded by the worker when the trial takes the slot).
Workers are numbered per host in the order they took their first trial.
Trials sharing a GPU (gpus_per_trial 1/k) are drawn on their device's row,
stacked in lanes, so the row shows how many ran on it at once over time; on a
GPU site with NVML, a second figure shows each device's memory and
utilisation over the same time (gpu_samples.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import optuna
from optuna.trial import FrozenTrial

from batchml.hpo.gpu_samples import device_samples
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


def lanes(trials: Sequence[FrozenTrial], rows: Mapping[int, str]) -> dict[int, int]:
    """Each trial's lane on its row (by number): the lowest not taken by a trial running then.

    A row's lane count is the most trials that ran on it at once (k or fewer on a
    shared GPU, 1 on a slot of its own). ``trials`` in start order.
    """
    ends: dict[str, list[float]] = {}  # per row: when the trial in each lane ends
    lane = {}
    for trial in trials:
        begin, end = span(trial)
        taken = ends.setdefault(rows[trial.number], [])
        free = next((i for i, busy_until in enumerate(taken) if busy_until <= begin), len(taken))
        taken[free : free + 1] = [end]
        lane[trial.number] = free
    return lane


def timeline_figure(study: optuna.Study) -> Figure | None:
    """One bar per trial, numbered, on the row of its slot, coloured by how it ended."""
    trials = ran(study)
    if not trials:
        return None
    plt = pyplot()
    rows = slot_rows(trials)
    labels = sorted(set(rows.values()))
    lane = lanes(trials, rows)
    width = {label: 1 + max(lane[n] for n, r in rows.items() if r == label) for label in labels}
    start = span(trials[0])[0]
    tall = sum(min(w, 3) for w in width.values())  # a shared row grows, up to 3 rows' height
    figure, axes = plt.subplots(figsize=(9, 0.4 * tall + 1.3))
    for trial in trials:
        begin, end = span(trial)
        label = rows[trial.number]
        height = 0.8 / width[label]
        y = labels.index(label) - 0.4 + height * (lane[trial.number] + 0.5)
        axes.barh(y, end - begin, left=begin - start, height=height,
                  color=COLOURS.get(trial.state.name, "tab:gray"), edgecolor="white")  # fmt: skip
        axes.text(begin - start + (end - begin) / 2, y, str(trial.number), ha="center",
                  va="center", fontsize=8 if width[label] < 4 else 6)  # fmt: skip
    axes.set_yticks(range(len(labels)), labels)
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the first trial started")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    axes.legend(handles, ["complete", "pruned", "failed"], loc="upper left",
                bbox_to_anchor=(1.01, 1), frameon=False)  # fmt: skip
    kind = "GPU" if any(t.user_attrs.get(DEVICES_ATTR) for t in trials) else "CPU"
    shared = max(width.values())
    stacked = (
        f"; trials sharing a GPU are stacked on its row (at most {shared} at once)"
        if shared > 1 else ""
    )  # fmt: skip
    return Figure(
        f"Trial timeline, one row per {kind} slot ([site ·] host · dask worker · slot); "
        f"each bar is a trial, labelled with its number{stacked}",
        png(figure),
    )


def devices_figure(study: optuna.Study) -> Figure | None:
    """Each device's memory used and utilisation while trials ran (None: no NVML samples)."""
    trials = ran(study)
    samples = device_samples(trials)
    if not samples:
        return None
    start = span(trials[0])[0]
    figure, (memory, busy) = pyplot().subplots(2, 1, sharex=True, figsize=(9, 5))
    for label, taken in samples.items():
        times = [s.time - start for s in taken]
        memory.plot(times, [s.memory_used / 1e9 for s in taken], label=label, marker=".")
        busy.plot(times, [math.nan if s.utilisation is None else s.utilisation for s in taken],
                  label=label, marker=".")  # fmt: skip
        memory.axhline(taken[0].memory_total / 1e9, ls=":", color="grey")
    memory.set_ylabel("memory used, GB")
    busy.set(ylabel="utilisation, %", ylim=(0, 100), xlabel="seconds since the first trial started")
    memory.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return Figure(
        "GPU memory used (dotted: the device's memory) and utilisation while trials ran, "
        "sampled by the workers through NVML",
        png(figure),
    )
