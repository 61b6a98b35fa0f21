"""GPU slots inside one worker job: which devices a trial may see.

A worker job holds G GPUs (Slurm gives indices such as "0,1", HTCondor gives
ids such as "GPU-a0223334,GPU-b1223334"; both reach the job as
CUDA_VISIBLE_DEVICES). A trial needing g GPUs takes a disjoint slot of g of
them, so several trials share one job without seeing each other's devices; a
trial needing a share 1/k of a GPU takes one device that at most k trials hold
at once (gpu_share.py).
dask's worker resources (``GPU=G``, tasks asking ``GPU=g``) already cap how
many trials run at once; this pool only says which devices each one gets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from batchml.backends._worker import visible_gpus
from batchml.errors import BatchmlError
from batchml.hpo.gpu_share import trials_per_gpu


class NoFreeSlotError(BatchmlError, RuntimeError):
    """More trials asked for GPUs than this worker has: a resource-accounting bug."""


class Slot(NamedTuple):
    """What a trial holds on its worker: the slot's number there and its GPUs (none on CPU)."""

    number: int  # from 0; a CPU slot is numbered too, so the report can draw one row per slot
    devices: tuple[str, ...]


class SlotPool:
    """Thread-safe assignment of device groups to the trials of one worker.

    Whole GPUs: each trial takes a group of ``per_trial`` devices no other trial
    holds. A share 1/k (``per_trial`` below 1): each trial takes one device held
    by fewer than k trials, the least busy one, so trials spread over the
    devices before any device takes a second. Among equally busy groups the one
    freed longest ago comes first. A GPU slot's number is unique among the
    trials running at once (device group times k, plus the trial's seat there).

    Trials without GPUs get the lowest free slot number: dask's TRIAL resource
    caps how many run at once, so the numbers stay below the worker's slots.
    """

    def __init__(self, devices: list[str], per_trial: float) -> None:
        self.per_trial = per_trial
        self.share = trials_per_gpu(per_trial) if per_trial else 1  # trials on a device at once
        size = max(1, int(per_trial)) if per_trial else 0  # devices in a group
        count = len(devices) // size if size else 0
        self._groups = [tuple(devices[i * size : (i + 1) * size]) for i in range(count)]
        self._seats: list[set[int]] = [set() for _ in range(count)]  # seats taken, per group
        self._order = list(range(count))  # GPU groups, freed longest ago first
        self._busy: set[int] = set()  # CPU slots in use
        self._lock = threading.Lock()

    @contextmanager
    def take(self) -> Iterator[Slot]:
        """A slot for the duration of a trial (no devices when trials use no GPU)."""
        with self._lock:
            slot = self._take_gpus() if self.per_trial else Slot(self._take_cpu(), ())
        try:
            yield slot
        finally:
            with self._lock:
                if self.per_trial:
                    group, seat = divmod(slot.number, self.share)
                    self._seats[group].discard(seat)
                    self._order.remove(group)
                    self._order.append(group)
                else:
                    self._busy.discard(slot.number)

    def _take_gpus(self) -> Slot:
        room = [g for g in self._order if len(self._seats[g]) < self.share]
        if not room:
            raise NoFreeSlotError(
                "no free GPU slot on this worker although dask scheduled a trial here",
                hint="worker --resources GPU=N must match the GPUs the job really has",
            )
        group = min(room, key=lambda g: len(self._seats[g]))  # the first of the least busy
        seat = next(s for s in range(self.share) if s not in self._seats[group])
        self._seats[group].add(seat)
        return Slot(group * self.share + seat, self._groups[group])

    def _take_cpu(self) -> int:
        index = next(i for i in range(len(self._busy) + 1) if i not in self._busy)
        self._busy.add(index)
        return index


_pools: dict[float, SlotPool] = {}
_pools_lock = threading.Lock()


def worker_pool(per_trial: float) -> SlotPool:
    """The pool of this worker process, built once from its CUDA_VISIBLE_DEVICES."""
    with _pools_lock:
        if per_trial not in _pools:
            _pools[per_trial] = SlotPool(visible_gpus(), per_trial)
        return _pools[per_trial]
