"""Each GPU's memory and utilisation, sampled by the worker while trials run (NVML).

Did sharing a GPU pay? The trial timeline shows how many trials each device
ran at once; these samples show what the device did meanwhile (busy 20 % of
the time with one trial, 80 % with four). A worker samples its devices every
``SAMPLE_EVERY_S`` in a thread of its own, and each trial carries the samples
of its device taken while it ran (``GPU_SAMPLES_ATTR``), so they reach the
study through the trial's writes, with no store of their own.

NVML (``nvidia-ml-py``, the ``gpu`` extra) reads the driver without touching
CUDA, so the worker may call it before forking trials. Without it, or without
an NVIDIA driver, ``read_devices`` raises NvmlUnavailable saying why, the
worker takes no samples and the report and status say nothing of them.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

from batchml.errors import BatchmlError
from batchml.hpo.outcome import GPU_SAMPLES_ATTR, HOST_ATTR

logger = logging.getLogger(__name__)

SAMPLE_EVERY_S = 5.0
KEPT_PER_DEVICE = 2000  # samples a worker keeps per device: hours of them, a few hundred kB
MAX_PER_TRIAL = 240  # samples stored on one trial; a longer trial keeps every n-th


class NvmlUnavailable(BatchmlError, RuntimeError):
    """NVML cannot be read here: no nvidia-ml-py, or no NVIDIA driver."""


@dataclass(frozen=True)
class DeviceSample:
    """One device at one moment: memory in bytes, utilisation in percent (None: not reported,
    as for MIG instances)."""

    device: str  # its id in CUDA_VISIBLE_DEVICES
    time: float  # epoch seconds
    memory_used: int
    memory_total: int
    utilisation: int | None


def read_devices(devices: Sequence[str]) -> list[DeviceSample]:
    """One sample of each device (an index such as '0', or a 'GPU-…'/'MIG-…' id)."""
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable(
            "NVML is not available: nvidia-ml-py is not installed",
            hint="pip install 'batchml[gpu]' on a GPU site to sample GPU memory and utilisation",
        ) from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(
            f"NVML is not available: {exc}", hint="no NVIDIA driver can be reached here"
        ) from None
    try:
        return [_sample(pynvml, device) for device in devices]
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML cannot read devices {list(devices)}: {exc}") from None
    finally:
        pynvml.nvmlShutdown()


def _sample(pynvml: Any, device: str) -> DeviceSample:
    if device.startswith(("GPU-", "MIG-")):
        handle = pynvml.nvmlDeviceGetHandleByUUID(device)
    else:
        handle = pynvml.nvmlDeviceGetHandleByIndex(int(device))
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    try:
        busy: int | None = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except pynvml.NVMLError:  # MIG instances report no utilisation
        busy = None
    return DeviceSample(device, time.time(), int(memory.used), int(memory.total), busy)


class DeviceSampler:
    """A worker's samples of its devices, taken in a daemon thread from ``start`` on.

    It stops for good at the first NvmlUnavailable (a machine without NVML stays so).
    """

    def __init__(self, devices: Sequence[str], every_s: float = SAMPLE_EVERY_S) -> None:
        self.devices = list(devices)
        self.every_s = every_s
        self.kept: dict[str, collections.deque[DeviceSample]] = {
            d: collections.deque(maxlen=KEPT_PER_DEVICE) for d in self.devices
        }
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        with self._lock:
            if self._started or not self.devices:
                return
            self._started = True
        threading.Thread(target=self._run, name="batchml-gpu-samples", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                samples = read_devices(self.devices)
            except NvmlUnavailable as why:
                logger.debug("no GPU samples: %s", why)
                return
            with self._lock:
                for sample in samples:
                    self.kept[sample.device].append(sample)
            time.sleep(self.every_s)

    def during(self, device: str, begin: float, end: float) -> list[DeviceSample]:
        """The samples of ``device`` taken from ``begin`` to ``end`` (epoch seconds)."""
        with self._lock:
            return [s for s in self.kept.get(device, ()) if begin <= s.time <= end]


def to_attr(samples: Sequence[DeviceSample]) -> dict[str, Any]:
    """Samples of one device as a trial stores them, thinned to ``MAX_PER_TRIAL``."""
    step = -(-len(samples) // MAX_PER_TRIAL) if samples else 1
    kept = samples[::step]
    return {
        "device": kept[0].device if kept else "",
        "total": kept[0].memory_total if kept else 0,
        "samples": [[round(s.time, 1), s.memory_used, s.utilisation] for s in kept],
    }


def from_attr(stored: Mapping[str, Any]) -> list[DeviceSample]:
    """The samples a trial stored (``to_attr``'s form)."""
    device, total = str(stored.get("device", "")), int(stored.get("total", 0))
    return [DeviceSample(device, float(t), int(used), total, None if busy is None else int(busy))
            for t, used, busy in stored.get("samples", [])]  # fmt: skip


_sampler: DeviceSampler | None = None
_sampler_lock = threading.Lock()


def worker_sampler() -> DeviceSampler:
    """The sampler of this worker process's devices (its CUDA_VISIBLE_DEVICES), made once."""
    global _sampler
    from batchml.backends._worker import visible_gpus

    with _sampler_lock:
        if _sampler is None:
            _sampler = DeviceSampler(visible_gpus())
        return _sampler


def device_samples(trials: Iterable[FrozenTrial]) -> dict[str, list[DeviceSample]]:
    """Every device's samples, from the trials that carry them, by time; keyed by
    ``host · GPU id`` (trials sharing a device carry the same samples: kept once)."""
    found: dict[str, dict[float, DeviceSample]] = {}
    for trial in trials:
        host = str(trial.user_attrs.get(HOST_ATTR, "unknown host")).split(".")[0]
        for stored in trial.user_attrs.get(GPU_SAMPLES_ATTR, []):
            for sample in from_attr(stored):
                found.setdefault(f"{host} · GPU {sample.device}", {})[sample.time] = sample
    return {
        label: [by_time[t] for t in sorted(by_time)] for label, by_time in sorted(found.items())
    }


def status_lines(trials: Iterable[FrozenTrial]) -> list[str]:
    """Each device's last sample, for `batchml hpo status` (none without NVML samples)."""
    lines = []
    for label, taken in device_samples(trials).items():
        last = taken[-1]
        busy = "" if last.utilisation is None else f", {last.utilisation} % busy"
        when = time.strftime("%H:%M:%S", time.localtime(last.time))
        lines.append(
            f"{label}: {last.memory_used / 1e9:.1f} of {last.memory_total / 1e9:.1f} GB used"
            f"{busy} (sampled {when}; {len(taken)} samples)"
        )
    return lines
