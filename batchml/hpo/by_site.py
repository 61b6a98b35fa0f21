"""A study broken down by site: what `batchml hpo status` and the report show per site.

Read from the study alone (each trial's ``batchml.site``, the study's
``batchml.sites``), so a study is shown the same while it runs, after it ended,
or from another machine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from batchml.hpo.outcome import SITE_ATTR, SLOT_ATTR, WORKER_ATTR, has_ended
from batchml.hpo.sites import wait_text

HEADER = ("site", "trials", "complete", "pruned", "failed", "slots used", "now")
UNKNOWN = "(not begun)"  # a trial lost before it began on any site records none


def site_of(trial: FrozenTrial) -> str:
    return str(trial.user_attrs.get(SITE_ATTR, UNKNOWN))


def several(trials: Sequence[FrozenTrial], states: Mapping[str, Any]) -> bool:
    """Whether the study ran on more than one site (else a breakdown says nothing)."""
    return len(set(states) | {site_of(t) for t in trials} - {UNKNOWN}) > 1


def site_rows(
    trials: Sequence[FrozenTrial], states: Mapping[str, Any], now: float | None = None
) -> list[tuple[str, ...]]:
    """One row per site: its trials by how they ended, the slots they used, and its state now
    (``states``: the study's ``batchml.sites``, written by the driver)."""
    now = time.time() if now is None else now
    names = sorted(set(states) | {site_of(t) for t in trials})
    rows = []
    for name in names:
        mine = [t for t in trials if site_of(t) == name]
        ended = [t for t in mine if has_ended(t)]
        slots = {(t.user_attrs.get(WORKER_ATTR), t.user_attrs.get(SLOT_ATTR)) for t in mine}
        rows.append((
            name, str(len(mine)),
            *(str(sum(t.state == s for t in ended)) for s in (TrialState.COMPLETE,
              TrialState.PRUNED, TrialState.FAIL)),
            str(len(slots)), state_text(states.get(name), now),
        ))  # fmt: skip
    return rows


def state_text(state: Mapping[str, Any] | None, now: float) -> str:
    """``up, 8 slots``; ``down, retry in 2 min: <why>``; '' for a site the study did not hold."""
    if not isinstance(state, Mapping):
        return ""
    if not state.get("down"):
        return f"up, {state.get('slots', 0)} slots"
    retry_at = state.get("retry_at")
    if isinstance(retry_at, int | float) and retry_at > now:
        when = f"retry in {wait_text(retry_at - now)}"
    else:
        when = "retried"
    return f"down, {when}: {state['down']}"
