"""GPU slots inside one worker job: which devices a trial may see.

A worker job holds G GPUs (Slurm gives indices such as "0,1", HTCondor gives
ids such as "GPU-a0223334,GPU-b1223334"; both reach the job as
CUDA_VISIBLE_DEVICES). A trial needing g GPUs takes a disjoint slot of g of
them, so several trials share one job without seeing each other's devices.
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


class NoFreeSlotError(BatchmlError, RuntimeError):
    """More trials asked for GPUs than this worker has: a resource-accounting bug."""


class Slot(NamedTuple):
    """What a trial holds on its worker: the slot's number there and its GPUs (none on CPU)."""

    number: int  # from 0; a CPU slot is numbered too, so the report can draw one row per slot
    devices: tuple[str, ...]


class SlotPool:
    """Thread-safe assignment of disjoint device groups to the trials of one worker.

    Trials without GPUs get the lowest free slot number: dask's TRIAL resource
    caps how many run at once, so the numbers stay below the worker's slots.
    """

    def __init__(self, devices: list[str], per_trial: int) -> None:
        self.per_trial = per_trial
        count = len(devices) // per_trial if per_trial else 0
        self._groups = [tuple(devices[i * per_trial : (i + 1) * per_trial]) for i in range(count)]
        self._free = list(range(count))  # GPU slots, by number
        self._busy: set[int] = set()  # CPU slots in use
        self._lock = threading.Lock()

    @contextmanager
    def take(self) -> Iterator[Slot]:
        """A slot for the duration of a trial (no devices when trials use no GPU)."""
        with self._lock:
            index = self._take_gpus() if self.per_trial else self._take_cpu()
        try:
            yield Slot(index, self._groups[index] if self.per_trial else ())
        finally:
            with self._lock:
                if self.per_trial:
                    self._free.append(index)
                else:
                    self._busy.discard(index)

    def _take_gpus(self) -> int:
        if not self._free:
            raise NoFreeSlotError(
                "no free GPU slot on this worker although dask scheduled a trial here",
                hint="worker --resources GPU=N must match the GPUs the job really has",
            )
        return self._free.pop(0)

    def _take_cpu(self) -> int:
        index = next(i for i in range(len(self._busy) + 1) if i not in self._busy)
        self._busy.add(index)
        return index


_pools: dict[int, SlotPool] = {}
_pools_lock = threading.Lock()


def worker_pool(per_trial: int) -> SlotPool:
    """The pool of this worker process, built once from its CUDA_VISIBLE_DEVICES."""
    with _pools_lock:
        if per_trial not in _pools:
            _pools[per_trial] = SlotPool(visible_gpus(), per_trial)
        return _pools[per_trial]
