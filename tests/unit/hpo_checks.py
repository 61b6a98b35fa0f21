"""What the HPO tests check on every backend: how many trials of one job held a GPU at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def slot_clashes(attrs: Mapping[int, Mapping[str, Any]]) -> list[tuple[int, int]]:
    """Pairs of trials (by number) that ran at once in the same job on the same devices.

    ``attrs`` maps a trial number to the user attributes the test objectives record:
    job, seen_devices, t_start, t_end.
    """
    clashes = []
    for a, first in attrs.items():
        for b, second in attrs.items():
            same_job = first["job"] == second["job"]
            overlap = first["t_start"] < second["t_end"] and second["t_start"] < first["t_end"]
            if a < b and same_job and overlap and first["seen_devices"] == second["seen_devices"]:
                clashes.append((a, b))
    return clashes


def most_at_once(attrs: Mapping[int, Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """The most trials that ran at once on each (job, devices) pair, from the same attributes.

    A trial ending at the instant another starts does not overlap it.
    """
    events: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for trial in attrs.values():
        where = events.setdefault((trial["job"], trial["seen_devices"]), [])
        where += [(trial["t_start"], 1), (trial["t_end"], -1)]
    peaks = {}
    for where, changes in events.items():
        running = peak = 0
        for _, change in sorted(changes):  # at one instant, ends (-1) before starts
            running += change
            peak = max(peak, running)
        peaks[where] = peak
    return peaks
