"""What ``gpus_per_trial`` means: whole GPUs per trial, or a share 1/k of one GPU.

Light trials (a small MLP uses a few percent of a GPU) waste a GPU each; with
``gpus_per_trial = 1/k``, k trials share a device, each still in its own
process and seeing only that device. A worker job still runs
``trials_per_job`` trials at once, so it holds ``trials_per_job / k`` GPUs,
which must be whole.

Why k is a power of two: dask counts a worker's resources in floating point,
taking a trial's share away when it starts and adding it back when it ends.
1/2, 1/4, ... are exact in binary and the count stays exact; 1/3 or 1/5 drift
after a few hundred trials, and the worker then admits one trial fewer than it
has room for.

How a worker job asks for its share is the site's choice (``slurm.gpu_share``):
whole GPUs shared inside the job (any scheduler); Slurm shards, where a
trial of 1/k holds ``shards_per_gpu / k`` shards and Slurm gives a job the
shards of one GPU only, so a job runs k trials on its one device; or MIG
slices, one slice per trial: the worker's slot pool spreads the trials over
the visible devices before doubling up, so each trial gets a slice of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchml.errors import InvalidValue

if TYPE_CHECKING:
    from batchml.config.resources import GpuUnit
    from batchml.config.site_schema import SlurmSettings

MAX_SHARE = 64  # at most this many trials on one GPU
SHARES = tuple(2**i for i in range(1, MAX_SHARE.bit_length()))  # k = 2, 4, ..., 64

_HINT = (
    "write a whole number of GPUs (0 for none, 1, 2, ...) or a share of one GPU: "
    f"0.5, 0.25, 0.125, ... down to 1/{MAX_SHARE} (k trials then share each GPU)"
)


def trials_per_gpu(gpus_per_trial: float) -> int:
    """k for a share 1/k of a GPU; 1 for whole GPUs (or none). InvalidValue for anything else
    (its message, as a study file's, leaves the field's name to the caller)."""
    if gpus_per_trial >= 0 and float(gpus_per_trial).is_integer():
        return 1
    if 0 < gpus_per_trial < 1:
        k = round(1 / gpus_per_trial)
        if k in SHARES and gpus_per_trial == 1 / k:
            return k
    raise InvalidValue(
        f"{gpus_per_trial!r} is neither a whole number of GPUs "
        "nor a share 1/k of one GPU with k a power of two",
        hint=_HINT,
    )


def job_gpus(gpus_per_trial: float, trials_per_job: int) -> int:
    """The GPUs one worker job holds to run ``trials_per_job`` trials at once.

    InvalidValue when the trials would leave part of a GPU unused (three trials
    of half a GPU): a batch system hands out whole GPUs. The message names
    ``trials_per_job``'s value, not the field.
    """
    k = trials_per_gpu(gpus_per_trial)
    if k == 1:
        return int(gpus_per_trial) * trials_per_job
    if trials_per_job % k:
        fit = max(k, trials_per_job - trials_per_job % k)
        raise InvalidValue(
            f"{trials_per_job} leaves part of a GPU unused at "
            f"gpus_per_trial {gpus_per_trial} ({k} trials share each GPU)",
            hint=f"make trials_per_job a multiple of {k}, e.g. trials_per_job={fit}",
        )
    return trials_per_job // k


def check_request(gpus_per_trial: float, trials_per_job: int | None) -> None:
    """InvalidValue naming the field for a bad ``gpus_per_trial``, or (``trials_per_job``
    given: the search starts its own worker jobs) a job that leaves part of a GPU unused."""
    try:
        trials_per_gpu(gpus_per_trial)
    except InvalidValue as bad:
        raise InvalidValue(f"gpus_per_trial: {bad.message}", hint=bad.hint) from None
    if trials_per_job is not None:
        try:
            job_gpus(gpus_per_trial, trials_per_job)
        except InvalidValue as bad:
            raise InvalidValue(f"trials_per_job: {bad.message}", hint=bad.hint) from None


def job_request(
    gpus_per_trial: float, trials_per_job: int, slurm: SlurmSettings | None
) -> tuple[int, GpuUnit]:
    """What one worker job asks its scheduler for: a count and its unit (``job_gpus`` GPUs,
    or the shards or MIG slices of a Slurm site that lends shares of a GPU that way).

    InvalidValue, naming the field, when the site's shards cannot hold the trials:
    more trials than share one GPU, or a share that is no whole number of shards.
    """
    gpus = job_gpus(gpus_per_trial, trials_per_job)
    k = trials_per_gpu(gpus_per_trial)
    share = slurm.gpu_share if slurm is not None else "gpus"
    if k == 1 or share == "gpus":
        return gpus, "gpu"
    if share == "mig":
        return trials_per_job, "mig"
    shards = slurm.shards_per_gpu if slurm is not None and slurm.shards_per_gpu else 1
    if gpus > 1:
        raise InvalidValue(
            f"trials_per_job: {trials_per_job} trials of 1/{k} GPU need the shards of {gpus} "
            "GPUs, and Slurm gives a job the shards of one GPU",
            hint=f"use trials_per_job={k}, and max_jobs for more trials at once",
        )
    if shards % k:
        raise InvalidValue(
            f"gpus_per_trial: 1/{k} of a GPU is no whole number of the site's "
            f"{shards} shards per GPU",
            hint=f"use a share 1/k with k dividing {shards}",
        )
    return shards, "shard"
