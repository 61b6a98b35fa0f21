"""Which worker the next trial goes to: a free slot first, else one queued per worker.

A queued trial starts the moment a slot of its worker frees, without a round
trip to the driver. The driver places trials itself because dask, choosing
among workers that were all busy, sometimes queued two trials behind one worker
and none behind another: one slot then ran a trial more than another, and the
search took a whole trial longer (BENCHMARKS.md, hyper-parameter search, runs
8 and 9). Once no more than a round is left, trials go only to free slots: one
queued in the last round would wait behind a busy worker while another's slot
idles.

``slots`` maps each connected worker to the trials it runs at once (0: it takes
none, as one draining before its walltime); ``sent`` counts the trials sent to
each worker and not ended.
"""

from __future__ import annotations

from collections.abc import Mapping


def next_worker(slots: Mapping[str, int], sent: Mapping[str, int], left: int) -> str | None:
    """The worker for one more trial, or None for none now; ``left``: trials of the budget
    not sent yet."""
    worker = least_busy(slots, sent)
    if left <= 0 or worker is None:
        return None
    free = slots[worker] - sent.get(worker, 0)
    if free > 0 or (free == 0 and left > sum(slots.values())):
        return worker
    return None


def least_busy(slots: Mapping[str, int], sent: Mapping[str, int]) -> str | None:
    """The worker taking trials with the most free slots (or the fewest waiting)."""
    taking = [w for w, count in slots.items() if count > 0]
    return max(taking, key=lambda w: slots[w] - sent.get(w, 0), default=None)
