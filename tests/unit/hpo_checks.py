"""What the HPO tests check on every backend: concurrent trials of one job never share a GPU."""

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
