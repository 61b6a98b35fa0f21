"""Packing trials that share a GPU by the memory they use (``gpu_memory_per_trial``).

``gpus_per_trial = 1/k`` caps a device at k trials whatever they hold; with
``gpu_memory_per_trial`` a worker also admits another trial on a device only
while the trials there fit in its memory. The figure per trial is the one
declared ('6GB'), or with 'auto' the largest peak measured so far on this
worker: trials of one study run one model family, so the largest peak seen is
the best guess for the next. Until a peak is known a trial runs alone on its
device. A declared figure below a measured peak gives way to the peak.

The peak is read in the trial process at its end from torch's caching
allocator (its peak of reserved memory: what the process held, cached blocks
included), and only if that process initialised CUDA: the worker, which forks
the trial processes, never does (a forked CUDA context is unusable). Memory
allocated outside torch (cupy, JAX, TensorRT) is not seen: such a trial states
its peak itself with ``trial.set_user_attr(GPU_PEAK_ATTR, n_bytes)``.

A device's memory comes from ``$BATCHML_DEVICE_MEMORY`` (a size such as
'80GB', for every device of the job: to pack to less than a whole device, or
where neither NVML nor torch can tell), else NVML (``nvidia-ml-py``, the
``gpu`` extra), else torch in a probe subprocess. Unknown, only the k cap holds.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Literal

from batchml.config.units import SIZE_FORMS, parse_size
from batchml.errors import InvalidValue

logger = logging.getLogger(__name__)

# What the allocator's peak does not count: the CUDA context itself, the workspaces of
# libraries that allocate beside torch (NCCL, some cuDNN paths) and fragmentation
# between the processes' allocations. A tenth of the device is kept free for them.
MARGIN = 0.10
DEVICE_MEMORY_ENV = "BATCHML_DEVICE_MEMORY"
PROBE_TIMEOUT_S = 120.0  # a first CUDA initialisation can take tens of seconds

GpuMemory = int | Literal["auto"] | None  # bytes per trial, measured, or not packed by memory

_HINT = (
    f"write the GPU memory one trial uses ({SIZE_FORMS}), or 'auto' to pack by the peaks "
    "trials measure; it applies when trials share a GPU (gpus_per_trial 0.5, 0.25, ...)"
)


def parse_gpu_memory(value: str | int | None, gpus_per_trial: float) -> GpuMemory:
    """``gpu_memory_per_trial`` as bytes, 'auto' or None. InvalidValue for anything else (its
    message, as a study file's, leaves the field's name to the caller)."""
    if value is None:
        return None
    if not 0 < gpus_per_trial < 1:
        raise InvalidValue(
            f"{value!r} needs trials that share a GPU, not gpus_per_trial {gpus_per_trial}",
            hint=_HINT,
        )
    if value == "auto":
        return "auto"
    try:
        size = parse_size(value)
    except InvalidValue as bad:
        raise InvalidValue(bad.message, hint=_HINT) from None
    if size <= 0:
        raise InvalidValue(f"{value!r} is no memory", hint=_HINT)
    return size


def fits(capacity: int, running: Sequence[int], incoming: int, margin: float = MARGIN) -> bool:
    """Whether a trial of ``incoming`` bytes fits beside ``running`` ones on a device of
    ``capacity`` bytes, keeping ``margin`` of it free. A trial alone always fits: it
    could run nowhere else."""
    return not running or sum(running) + incoming <= capacity * (1 - margin)


class MemoryPacker:
    """Which devices of one worker take another trial, by memory (the k cap is the pool's).

    Not thread-safe: the worker's SlotPool calls it under its lock.
    """

    def __init__(self, policy: int | Literal["auto"], capacities: Mapping[str, int]) -> None:
        self.declared = None if policy == "auto" else policy
        self.capacities = dict(capacities)  # bytes per device id; a device absent: unknown
        self.largest_peak: int | None = None

    def estimate(self) -> int | None:
        """The bytes a trial is expected to use: None while unknown ('auto', no peak yet)."""
        known = [f for f in (self.declared, self.largest_peak) if f is not None]
        return max(known, default=None)

    def admits(self, device: str, running: int) -> bool:
        """Whether ``device``, running ``running`` trials, takes one more."""
        if running == 0 or device not in self.capacities:
            return True
        each = self.estimate()
        return each is not None and fits(self.capacities[device], [each] * running, each)

    def record(self, peak: int) -> None:
        """A trial's measured peak, in bytes (0: it used no GPU memory torch saw)."""
        self.largest_peak = max(peak, self.largest_peak or 0)


def device_capacities(devices: Sequence[str]) -> dict[str, int]:
    """The memory of each device (by its id in CUDA_VISIBLE_DEVICES); those unknown are left out."""
    if not devices:
        return {}
    declared = os.environ.get(DEVICE_MEMORY_ENV)
    if declared:
        size = parse_size(declared)
        return dict.fromkeys(devices, size)
    from batchml.hpo.gpu_samples import NvmlUnavailable, read_devices

    try:
        return {s.device: s.memory_total for s in read_devices(devices)}
    except NvmlUnavailable as why:
        logger.debug("device memory from torch: %s", why)
    return _probe_with_torch(devices)


_PROBE = (
    "import torch\n"
    "for i in range(torch.cuda.device_count()):\n"
    "    print(torch.cuda.get_device_properties(i).total_memory)\n"
)


def _probe_with_torch(devices: Sequence[str]) -> dict[str, int]:
    """Each device's memory from torch, in a subprocess: CUDA never initialises in the worker."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(devices)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
            timeout=PROBE_TIMEOUT_S, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("GPU memory unknown (trials are packed by count only): %s", exc)
        return {}
    sizes = [int(line) for line in done.stdout.split()]
    return dict(zip(devices, sizes, strict=False))


def trial_peak() -> int:
    """The peak GPU memory torch's allocator held in this process (0 if CUDA never started)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return 0
    return sum(torch.cuda.max_memory_reserved(i) for i in range(torch.cuda.device_count()))


def is_cuda_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is CUDA running out of memory (torch's own error, or its older text)."""
    torch = sys.modules.get("torch")
    oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    if isinstance(oom, type) and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)
