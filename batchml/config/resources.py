"""One resource request, compiled into what each scheduler understands.

Users of dask-jobqueue paste scheduler directives by hand and meet hidden
defaults (a 30-minute walltime, a forced --mem that clashes with --mem-per-gpu).
Here a request is data: filled from the site's defaults, overridden per call,
with the filled-in fields remembered so they can be shown before submission,
then compiled once per scheduler by the functions below.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from batchml.config.site_schema import GPU_CAPABILITIES, JOB_FLAVOURS, MAX_CORES, MAX_GPUS, Site
from batchml.config.site_values import GPU_NAME
from batchml.config.units import format_duration, parse_duration, parse_size
from batchml.errors import InvalidValue

MIB = 2**20
_POSITIVE_HINT = "ask for at least 1 core, and sizes such as 4GB"
MAX_JOBS = 10_000  # worker jobs of one cluster or study: more is a typo, not a plan
# What one of a request's ``gpus`` is on Slurm: a whole GPU, one shard of a GPU, or a MIG
# slice of the site's mig_profile (the shares of a GPU a site lends; see batchml.hpo.gpu_share).
GpuUnit = Literal["gpu", "shard", "mig"]


@dataclass(frozen=True)
class Resources:
    """What one job asks for. Memory and disk are bytes; memory is per job."""

    cores: int = 1
    memory: int = 2 * 10**9
    disk: int = 10 * 10**9
    gpus: int = 0
    gpu_unit: GpuUnit = "gpu"
    gpus_per_task: int | None = None
    mem_per_gpu: int | None = None
    gpu_capability: float | None = None
    gpu_memory: int | None = None
    gpu_names: tuple[str, ...] = ()
    walltime: timedelta = timedelta(hours=1)
    filled_from_site: frozenset[str] = field(default=frozenset(), compare=False)

    def __post_init__(self) -> None:
        for name in ("cores", "memory", "disk"):
            if getattr(self, name) < 1:
                raise InvalidValue(
                    f"{name} must be positive, not {getattr(self, name)}", hint=_POSITIVE_HINT
                )
        if self.cores > MAX_CORES:
            raise InvalidValue(
                f"cores={self.cores} is more than a job may ask for",
                hint=f"ask for {MAX_CORES} or fewer",
            )
        if not 0 <= self.gpus <= MAX_GPUS:
            raise InvalidValue(
                f"gpus={self.gpus} is out of range", hint=f"ask for 0 to {MAX_GPUS} GPUs per job"
            )
        if self.mem_per_gpu is not None and self.mem_per_gpu < 1:
            raise InvalidValue(
                f"mem_per_gpu must be positive, not {self.mem_per_gpu}", hint=_POSITIVE_HINT
            )
        if self.mem_per_gpu is not None and not self.gpus:
            raise InvalidValue(
                "mem_per_gpu is memory per GPU, and the job asks for no GPU",
                hint="add gpus, or ask for memory instead",
            )
        low, high = GPU_CAPABILITIES
        capability = self.gpu_capability
        if capability is not None and not low <= capability <= high:  # also refuses nan
            raise InvalidValue(
                f"gpu_capability={capability} is not a CUDA compute capability",
                hint=f"write a number from {low} to {high}, such as 8.0 for an A100",
            )
        if self.gpus_per_task is not None and (self.gpus == 0 or self.gpus % self.gpus_per_task):
            raise InvalidValue(
                f"gpus_per_task={self.gpus_per_task} does not divide gpus={self.gpus}",
                hint="make gpus a multiple of gpus_per_task",
            )
        if self.walltime <= timedelta(0):
            raise InvalidValue("walltime must be positive", hint="write e.g. '2h'")
        for name in self.gpu_names:
            if not GPU_NAME.fullmatch(name):
                raise InvalidValue(
                    f"{name!r} is not a GPU model name (it goes into a ClassAd regular expression)",
                    hint="use letters, digits, spaces and . _ + -, such as 'A100' or 'H100'",
                )

    @classmethod
    def from_site(cls, site: Site, **overrides: object) -> Resources:
        """The site's defaults, overridden by the caller; strings such as '8GB' or '2h' parse."""
        known = {f.name for f in dataclasses.fields(cls)} - {"filled_from_site"}
        unknown = set(overrides) - known
        if unknown:
            raise InvalidValue(
                f"unknown resource {sorted(unknown)[0]!r}",
                hint=f"use one of {', '.join(sorted(known))}",
            )
        given = {k: _parse(k, v) for k, v in overrides.items() if v is not None}
        if "mem_per_gpu" in given:
            if "memory" in given:
                raise InvalidValue(
                    "both memory and mem_per_gpu are given: a job gets one of them",
                    hint="give memory (per job) or mem_per_gpu (per GPU), not both",
                )
            # Every scheduler then gets the same total; Slurm is still asked per GPU.
            per_gpu, gpus = given["mem_per_gpu"], given.get("gpus", site.defaults.gpus)
            if isinstance(per_gpu, int) and isinstance(gpus, int) and gpus > 0 and per_gpu > 0:
                given["memory"] = per_gpu * gpus
        unit = given.get("gpu_unit", "gpu")
        lent = site.slurm.gpu_share if site.slurm is not None else "gpus"
        if unit != "gpu" and unit != lent:
            raise InvalidValue(
                f"gpu_unit={unit!r}, and site {site.name!r} does not lend GPUs as {unit}s",
                hint="ask whole GPUs (gpu_unit='gpu'), or set slurm.gpu_share in the site file",
            )
        defaults = site.defaults
        from_site = {
            "cores": defaults.cores,
            "memory": defaults.memory,
            "disk": defaults.disk,
            "gpus": defaults.gpus,
            "gpu_capability": defaults.gpu_capability,
            "gpu_memory": defaults.gpu_memory,
            "gpu_names": tuple(defaults.gpu_names),
            "walltime": defaults.walltime,
        }
        filled = frozenset(k for k in from_site if k not in given)
        return cls(**{**from_site, **given}, filled_from_site=filled)  # type: ignore[arg-type]


def _parse(name: str, value: object) -> object:
    if name in ("memory", "disk", "mem_per_gpu", "gpu_memory") and isinstance(value, str):
        return parse_size(value)
    if name == "walltime" and isinstance(value, str):
        return parse_duration(value)
    if name == "gpu_names" and isinstance(value, str):
        return tuple(v for v in value.split(",") if v)
    return value


def htcondor_flavour(walltime: timedelta) -> str:
    """The smallest lxplus job flavour whose limit covers ``walltime``."""
    for flavour, limit in JOB_FLAVOURS.items():
        if walltime <= limit:
            return flavour
    raise InvalidValue(
        f"walltime {format_duration(walltime)} is longer than any lxplus job flavour allows",
        hint="the longest is nextweek (1w): checkpoint and resubmit instead",
    )


def htcondor_gpu_requirement(res: Resources) -> str | None:
    """A ClassAd expression on the GPU properties, valid for new and legacy attribute names.

    HTCondor >= 9 publishes GPUs_Capability etc.; older pools and some
    lxplus nodes still publish CUDACapability. ``?:`` takes the first defined.
    """
    terms = []
    if res.gpu_capability is not None:
        terms.append(f"(TARGET.GPUs_Capability ?: TARGET.CUDACapability) >= {res.gpu_capability}")
    if res.gpu_memory is not None:
        mib = res.gpu_memory // MIB
        terms.append(f"(TARGET.GPUs_GlobalMemoryMb ?: TARGET.CUDAGlobalMemoryMb) >= {mib}")
    if res.gpu_names:
        pattern = "|".join(res.gpu_names).replace("\\", "\\\\").replace('"', '\\"')
        terms.append(f'regexp("{pattern}", TARGET.GPUs_DeviceName ?: TARGET.CUDADeviceName)')
    return " && ".join(terms) if res.gpus and terms else None


def htcondor_submit_entries(res: Resources, site: Site) -> dict[str, str]:
    """Submit-description entries for the request (values in submit-language syntax)."""
    entries = {
        "request_cpus": str(res.cores),
        "request_memory": f"{math.ceil(res.memory / MIB)}MB",
        "request_disk": f"{math.ceil(res.disk / 1024)}KB",
    }
    if res.gpus:
        entries["request_gpus"] = str(res.gpus)
    requirement = htcondor_gpu_requirement(res)
    if requirement:
        entries["requirements"] = requirement
    condor = site.htcondor
    if condor is not None and condor.job_flavour is not None:
        entries["+JobFlavour"] = f'"{htcondor_flavour(res.walltime)}"'
    else:
        entries["+MaxRuntime"] = str(int(res.walltime.total_seconds()))
    return entries


def slurm_directives(res: Resources, site: Site) -> list[str]:
    """sbatch long options, one per item: never both --mem and --mem-per-gpu."""
    slurm = site.slurm
    options = [f"--cpus-per-task={res.cores}", f"--time={_slurm_time(res.walltime)}"]
    per_gpu = res.mem_per_gpu
    if res.gpu_unit == "shard":
        per_gpu = None  # memory per shard would be a slice of it, not what the job needs
    elif (
        per_gpu is None
        and res.gpus
        and slurm is not None
        and slurm.memory_directive == "mem-per-gpu"
    ):
        per_gpu = math.ceil(res.memory / res.gpus)
    if per_gpu is not None and res.gpus:
        options.append(f"--mem-per-gpu={math.ceil(per_gpu / MIB)}M")
    else:
        options.append(f"--mem={math.ceil(res.memory / MIB)}M")
    if res.gpus and res.gpu_unit == "shard":
        options.append(f"--gres=shard:{res.gpus}")
    elif res.gpus:
        kind = f"{slurm.gpu_type}:" if slurm is not None and slurm.gpu_type else ""
        if res.gpu_unit == "mig" and slurm is not None and slurm.mig_profile:
            kind = f"{slurm.mig_profile}:"  # Slurm lends MIG slices as GPUs of that type
        if slurm is not None and slurm.gpu_directive == "gpus-per-node":
            options.append(f"--gpus-per-node={kind}{res.gpus}")
        else:
            options.append(f"--gres=gpu:{kind}{res.gpus}")
        if res.gpus_per_task:
            options.append(f"--gpus-per-task={res.gpus_per_task}")
    if slurm is not None:
        for flag, value in (
            ("partition", slurm.partition),
            ("account", slurm.account),
            ("qos", slurm.qos),
            ("constraint", slurm.constraint),
        ):
            if value:
                options.append(f"--{flag}={value}")
        if slurm.signal_before_timeout:
            seconds = int(slurm.signal_before_timeout.total_seconds())
            options.append(f"--signal=B:USR1@{seconds}")
        options.extend(slurm.extra_directives)
    return options


def _slurm_time(walltime: timedelta) -> str:
    minutes = math.ceil(walltime.total_seconds() / 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:00"
