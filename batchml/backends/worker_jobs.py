"""What batchml adds to dask-jobqueue's worker-job classes: a refused submission is kept.

dask-jobqueue submits worker jobs from a callback on its event loop. When
sbatch or condor_submit refuses one (a wrong partition, a bad requirement, an
expired token), the error is only logged and the cluster has one worker less,
so a search would wait out its patience for workers that never come. The job
keeps the error instead, and the HPO driver stops at once with the
scheduler's own words.
"""

from __future__ import annotations

from typing import Any

from distributed.core import Status

from batchml._compat.dask_jobqueue import SLURMJob


class KeepsSubmitError:
    """Mixed in before a dask-jobqueue Job class: ``submit_error`` holds a failed submission."""

    submit_error: BaseException | None = None

    async def start(self) -> None:
        try:
            await super().start()  # type: ignore[misc]
        except Exception as exc:
            self.submit_error = exc
            self.status = Status.failed  # what the cluster's shutdown expects of a dead job
            raise


class SlurmWorkerJob(KeepsSubmitError, SLURMJob):
    """dask-jobqueue's Slurm worker job, keeping a refused submission."""


def drop_refused(cluster: Any) -> list[str]:
    """Forget the refused jobs of ``cluster``; return what the scheduler said (its stderr).

    Each is reported once: the driver stops at the first, and a caller that
    goes on does not hear of it again.
    """
    said = []
    for name, job in list(getattr(cluster, "workers", {}).items()):
        error = getattr(job, "submit_error", None)
        if error is not None:
            del cluster.workers[name]
            cluster.worker_spec.pop(name, None)
            text = str(error)
            said.append(text.split("stderr:", 1)[-1].strip() or text)
    return said
