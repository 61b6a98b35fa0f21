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

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from batchml.backends._worker import visible_gpus
from batchml.errors import BatchmlError
from batchml.hpo.gpu_memory import (
    DEVICE_MEMORY_ENV,
    GpuMemory,
    MemoryPacker,
    device_capacities,
)
from batchml.hpo.gpu_share import trials_per_gpu

logger = logging.getLogger(__name__)


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

    With a ``packer`` (gpu_memory.py) a shared device also takes a trial only
    while the memory of those there allows: a trial with no device admitting it
    waits for one. A trial taken ``alone`` waits for an empty device and holds
    all its seats; while one waits, the others leave emptied devices to it (dask
    already keeps a whole device's share free for it, see driver.py).

    Trials without GPUs get the lowest free slot number: dask's TRIAL resource
    caps how many run at once, so the numbers stay below the worker's slots.
    """

    def __init__(
        self, devices: list[str], per_trial: float, packer: MemoryPacker | None = None
    ) -> None:
        self.per_trial = per_trial
        self.share = trials_per_gpu(per_trial) if per_trial else 1  # trials on a device at once
        self.packer = packer
        size = max(1, int(per_trial)) if per_trial else 0  # devices in a group
        count = len(devices) // size if size else 0
        self._groups = [tuple(devices[i * size : (i + 1) * size]) for i in range(count)]
        self._seats: list[set[int]] = [set() for _ in range(count)]  # seats taken, per group
        self._order = list(range(count))  # GPU groups, freed longest ago first
        self._busy: set[int] = set()  # CPU slots in use
        self._company: set[int] = set()  # GPU slots whose device another trial held meanwhile
        self._alone_waiting = 0
        self._held_alone: set[int] = set()  # groups a trial holds alone
        self._changed = threading.Condition()

    @contextmanager
    def take(self, alone: bool = False) -> Iterator[Slot]:
        """A slot for the duration of a trial (no devices when trials use no GPU); ``alone``:
        a device no other trial holds meanwhile."""
        with self._changed:
            if not self.per_trial:
                slot = Slot(self._take_cpu(), ())
            elif alone and self.share > 1:
                slot = self._take_alone()
            else:
                slot = self._take_gpus()
        try:
            yield slot
        finally:
            with self._changed:
                self._free(slot)
                self._changed.notify_all()

    def had_company(self, slot: Slot) -> bool:
        """Whether another trial held the slot's device at some moment since it was taken."""
        with self._changed:
            return slot.number in self._company

    def record_peak(self, peak: int) -> None:
        """A trial's measured peak GPU memory: the packer's next admissions count it."""
        if self.packer is not None:
            with self._changed:
                self.packer.record(peak)
                self._changed.notify_all()

    def _free(self, slot: Slot) -> None:
        self._company.discard(slot.number)
        if not self.per_trial:
            self._busy.discard(slot.number)
            return
        group, seat = divmod(slot.number, self.share)
        if group in self._held_alone:
            self._held_alone.discard(group)
            self._seats[group].clear()
        self._seats[group].discard(seat)
        self._order.remove(group)
        self._order.append(group)

    def _take_gpus(self) -> Slot:
        room = [g for g in self._order if len(self._seats[g]) < self.share]
        if not room:
            raise NoFreeSlotError(
                "no free GPU slot on this worker although dask scheduled a trial here",
                hint="worker --resources GPU=N must match the GPUs the job really has",
            )
        self._changed.wait_for(lambda: self._admitting() is not None)
        group = self._admitting()
        assert group is not None
        seat = next(s for s in range(self.share) if s not in self._seats[group])
        if self._seats[group]:  # company for everyone on the device, the newcomer included
            self._company.update(group * self.share + s for s in self._seats[group] | {seat})
        self._seats[group].add(seat)
        return Slot(group * self.share + seat, self._groups[group])

    def _admitting(self) -> int | None:
        """The first of the least busy groups that takes a trial now, or None."""
        taking = [
            g for g in self._order
            if len(self._seats[g]) < self.share
            and not (self._alone_waiting and not self._seats[g])  # kept for the one waiting
            and (self.packer is None or self.packer.admits(self._groups[g][0], len(self._seats[g])))
        ]  # fmt: skip
        return min(taking, key=lambda g: len(self._seats[g]), default=None)

    def _take_alone(self) -> Slot:
        self._alone_waiting += 1
        try:
            self._changed.wait_for(lambda: any(not seats for seats in self._seats))
        finally:
            self._alone_waiting -= 1
        group = next(g for g in self._order if not self._seats[g])
        self._seats[group].update(range(self.share))
        self._held_alone.add(group)
        return Slot(group * self.share, self._groups[group])

    def _take_cpu(self) -> int:
        index = next(i for i in range(len(self._busy) + 1) if i not in self._busy)
        self._busy.add(index)
        return index


_pools: dict[tuple[float, GpuMemory], SlotPool] = {}
_pools_lock = threading.Lock()


def worker_pool(per_trial: float, memory: GpuMemory = None) -> SlotPool:
    """The pool of this worker process, built once from its CUDA_VISIBLE_DEVICES (and, to
    pack by ``memory``, the memory of those devices)."""
    with _pools_lock:
        if (per_trial, memory) not in _pools:
            devices = visible_gpus()
            packer = None if memory is None else MemoryPacker(memory, device_capacities(devices))
            if packer is not None and len(packer.capacities) < len(devices):
                logger.warning(
                    "the memory of GPUs %s is unknown: trials share them by count only "
                    "(install nvidia-ml-py, or set %s)", devices, DEVICE_MEMORY_ENV,
                )  # fmt: skip
            _pools[per_trial, memory] = SlotPool(devices, per_trial, packer)
        return _pools[per_trial, memory]
