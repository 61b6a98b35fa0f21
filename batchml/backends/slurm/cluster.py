"""dask workers as Slurm jobs: dask-jobqueue's SLURMCluster, configured from the site.

What batchml adds to a bare SLURMCluster, and why:

- every sbatch option from ``resources.slurm_directives``, the one place plain
  jobs get theirs, so a dask-jobqueue default (its walltime, a ``--mem``
  beside ``--mem-per-gpu``, a partition from ~/.config/dask) never slips in;
- ``--resources GPU=N`` on every worker, the site's ports and interface, and
  the prologue every worker job runs (batchml.backends._worker);
- TLS with per-cluster temporary credentials by default. Slurm has no file
  transfer, so the workers read their TLS files from a private folder of the
  site's shared_dir, made and checked here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask

from batchml._compat import tornado_tls
from batchml._compat.dask_jobqueue import KeepsSubmitError, SLURMCluster, SLURMJob
from batchml._fs import private_folder
from batchml.backends._worker import (
    expand_path,
    scheduler_port,
    web_server,
    worker_arguments,
    worker_prologue,
    worker_python,
)
from batchml.backends.base import ClusterOptions
from batchml.config.resources import Resources, slurm_directives
from batchml.config.site_schema import Site
from batchml.errors import InvalidValue

# sbatch options dask-jobqueue writes itself (from keywords we pass explicitly), and the
# header line each becomes there, so a line for a value batchml leaves unset can be skipped.
_DASK_HEADER = {
    "time": "#SBATCH -t ",
    "cpus-per-task": "#SBATCH --cpus-per-task=",
    "mem": "#SBATCH --mem=",
    "partition": "#SBATCH -p ",
    "account": "#SBATCH -A ",
}


class SlurmWorkerJob(KeepsSubmitError, SLURMJob):
    """dask-jobqueue's Slurm worker job, keeping a refused submission."""


def make_cluster(site: Site, resources: Resources, options: ClusterOptions) -> SLURMCluster:
    """A SLURMCluster whose workers each are one job with ``resources``, over TLS by default.

    The workers' TLS files are written, readable by the user only, to a private
    folder of the site's shared_dir (else of the logs), which the workers read;
    see ``_credentials_folder``.
    """
    log_dir = Path(options.log_directory or expand_path(site.paths.log_dir))
    security = options.credentials()
    shared = _credentials_folder(site.paths.shared_dir, log_dir) if security else None
    tornado_tls.install()  # for this driver's scheduler and client
    web, config = web_server(site.network)
    with dask.config.set(config):
        cluster = SLURMCluster(
            job_cls=SlurmWorkerJob,  # type: ignore[arg-type]  # annotated as an instance
            **_job_keywords(site, resources),
            python=worker_python(options.python),
            interface=site.network.interface,
            protocol="tls://" if security else "tcp://",
            security=security,
            shared_temp_directory=shared,
            scheduler_options={"port": scheduler_port(site.network), **web},
            worker_extra_args=worker_arguments(resources, site.network, options.worker_resources),
            log_directory=str(log_dir),
            local_directory=site.paths.scratch_dir,
            job_name="batchml-worker",
            job_script_prologue=worker_prologue(site, resources.walltime, resources.gpus),
            death_timeout=60,
            processes=1,
            nanny=True,
        )
    if options.jobs:
        cluster.scale(jobs=options.jobs)
    return cluster


def _job_keywords(site: Site, resources: Resources) -> dict[str, Any]:
    """SLURMCluster's resource keywords, all from slurm_directives: nothing from its config.

    dask-jobqueue writes time, CPUs, --mem, partition and account itself, so those
    are passed as keywords; a line for one batchml does not set (--mem beside
    --mem-per-gpu, a partition from ~/.config/dask) is skipped.
    """
    written: dict[str, str] = {}
    extra: list[str] = []
    for directive in slurm_directives(resources, site):
        key, sep, value = directive.removeprefix("--").partition("=")
        if sep and key in _DASK_HEADER and key not in written:
            written[key] = value
        else:
            extra.append(directive)
    return {
        "cores": resources.cores,
        "memory": resources.memory,
        "walltime": written["time"],
        "job_cpu": resources.cores,
        "job_mem": written.get("mem"),
        "queue": written.get("partition"),
        "account": written.get("account"),
        "job_extra_directives": extra,
        "job_directives_skip": [h for k, h in _DASK_HEADER.items() if k not in written],
    }


def _credentials_folder(shared_dir: str | None, log_dir: Path) -> str:
    """The folder for the workers' TLS files, as their job script names it (the site's text,
    expanded on the node): ``batchml-dask-tls-<uid>`` inside the site's shared_dir (else
    the log folder), made first if missing, and private to the user (0700, checked).

    dask-jobqueue writes each cluster's files there (0600, random names) and removes
    them with the cluster. A shared_dir that cannot be made is named, with the fix.
    """
    if shared_dir is None:
        field, remote, local = "paths.log_dir", str(log_dir), log_dir
    else:
        field, remote, local = "paths.shared_dir", shared_dir, Path(expand_path(shared_dir))
    name = f"batchml-dask-tls-{os.getuid()}"
    try:
        local.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidValue(
            f"{field} {remote!r} ({local} here) cannot be made: {exc.strerror}",
            hint=f"set {field} in the site file to a folder you can write that the compute "
            "nodes see (your home or a project space): the workers' TLS files go there",
        ) from None
    private_folder(local / name, field)
    return f"{remote.rstrip('/')}/{name}"
