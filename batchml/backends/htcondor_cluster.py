"""dask workers as HTCondor jobs: dask-jobqueue's HTCondorCluster, configured from the site.

What batchml adds to a bare HTCondorCluster, and why:

- the submit entries of plain jobs (request_*, flavour or MaxRuntime, WantOS,
  container, credentials), so a worker asks for what a training job would;
- ``--resources GPU=N`` on every worker, so each trial claims its own GPU slot;
- the site's interface and ports: where a firewall sits between the batch
  nodes and the login node (lxplus), the scheduler listens on the port the
  site opens (8786 on lxplus) and the workers and their nannies on the site's
  range (10000-10100 there; sources in the shipped lxplus.yaml);
- TLS with per-cluster temporary credentials by default. A scheduler on a
  shared login node is otherwise open to every user of that node, and runs
  their code as you. The credentials travel with each worker job (HTCondor
  file transfer into the job's private scratch folder), so no shared
  filesystem is needed; on the submit side they sit in a folder only the user
  can read (0700, files 0600), removed with the cluster.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import tempfile
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
from distributed.security import Security

from batchml._compat.dask_jobqueue import HTCondorCluster, HTCondorJob
from batchml.backends import tls_error_queue
from batchml.backends.base import (
    SchedulerError,
    web_server,
    worker_arguments,
    worker_credentials,
    worker_prologue,
    worker_python,
)
from batchml.backends.htcondor_lint import parse_submit
from batchml.backends.worker_jobs import KeepsSubmitError
from batchml.errors import InvalidValue
from batchml.resources import Resources
from batchml.sites import Network, Site
from batchml.submit_language import submit_value

# dask-jobqueue's own request lines, replaced by batchml's request_* entries.
_REPLACED_DIRECTIVES = ["RequestCpus", "RequestMemory", "RequestDisk"]


@dataclass(frozen=True)
class ClusterOptions:
    """What a caller may choose besides the resources; anything else is an error."""

    jobs: int = 0
    python: str | None = None
    security: Security | None = None
    log_directory: str | None = None
    worker_resources: Mapping[str, int] | None = None  # dask resources besides the GPUs


class TransferredTLSJob(KeepsSubmitError, HTCondorJob):
    """A worker job whose TLS files travel into its scratch folder, in a checked description.

    dask-jobqueue writes temporary credentials to ``shared_temp_directory`` and
    hands the worker their absolute paths, assuming the execute node shares
    that folder. Here the files are listed in ``transfer_input_files`` and the
    worker opens them by name in its working directory, the job's scratch.

    dask-jobqueue pastes the worker's shell command (the site's environment
    lines first) and the log folder into the submit description as they are,
    where ``$(...)`` would be expanded by condor_submit: they are written for
    the submit language here, and the whole description is linted before
    condor_submit sees it.
    """

    def __init__(self, *args: Any, security: Security | None = None, **kwargs: Any) -> None:
        super().__init__(*args, security=security, **kwargs)
        tls = security.get_tls_config_for_role("worker") if security else {}
        files = [path for key, path in tls.items() if key != "ciphers" and path]
        for path in files:
            self._command_template = self._command_template.replace(path, os.path.basename(path))
        self._command_template = submit_value(self._command_template, embedded=True)
        if self.log_directory:
            self.job_header_dict["LogDirectory"] = submit_value(self.log_directory)
        if files:
            self.job_header_dict.update(
                {
                    "transfer_input_files": submit_value(",".join(files)),
                    "should_transfer_files": "YES",
                    "when_to_transfer_output": "ON_EXIT",
                }
            )

    def job_script(self) -> str:
        text: str = super().job_script()
        parse_submit(text, "the dask worker's submit description", executable=self.executable)
        return text


def make_cluster(
    site: Site, resources: Resources, entries: dict[str, str], options: Mapping[str, Any]
) -> HTCondorCluster:
    """An HTCondorCluster for ``site``; ``options`` are the fields of ClusterOptions."""
    chosen = _options(options)
    network = site.network
    condor = site.htcondor
    tls_error_queue.install()  # for this driver's scheduler and client
    tls_dir = tempfile.mkdtemp(prefix="batchml-dask-tls-")  # mode 0700
    security = Security.temporary() if chosen.security is None else chosen.security
    web, config = web_server(network)
    with dask.config.set(config):
        cluster = HTCondorCluster(
            job_cls=TransferredTLSJob,  # type: ignore[arg-type]  # dask-jobqueue annotates a class as an instance
            cores=resources.cores,
            memory=str(resources.memory),
            disk=str(resources.disk),
            processes=1,
            python=chosen.python or worker_python(),
            interface=network.interface,
            security=worker_credentials(security, Path(tls_dir)),
            scheduler_options={"port": scheduler_port(network), **web},
            job_extra_directives=entries,
            job_directives_skip=_REPLACED_DIRECTIVES,
            worker_extra_args=worker_arguments(resources, network, chosen.worker_resources),
            job_script_prologue=worker_prologue(site, resources.walltime),
            submit_command_extra=["-spool"] if condor is not None and condor.spool else [],
            log_directory=chosen.log_directory or _expanded(site.paths.log_dir),
        )
    weakref.finalize(cluster, shutil.rmtree, tls_dir, True)
    if chosen.jobs:
        cluster.scale(jobs=chosen.jobs)
    return cluster


def _expanded(path: str) -> str:
    """A site folder on the submit host (the driver's side): ~ and $VARIABLES expanded."""
    return os.path.expanduser(os.path.expandvars(path))


def scheduler_port(network: Network) -> int:
    """The site's scheduler port (checked free); else a free one in the worker range; else 0.

    A fixed port on a shared login node may be another user's already: that is
    said at once, rather than as dask's bind error. The range is searched from
    the top, away from the bottom where workers and nannies start their own
    search. A port is free when chosen and bound a moment later; a process
    taking it in between makes the scheduler fail with an error naming it.
    """
    if network.scheduler_port:
        if not _free(network.scheduler_port):
            raise SchedulerError(
                f"port {network.scheduler_port} (the site's network.scheduler_port) is taken "
                "on this host: something listens there, such as another user's dask scheduler",
                hint="stop it if it is yours, or log in to another node of the site "
                "(on lxplus: ssh lxplus.cern.ch gives another one)",
            )
        return network.scheduler_port
    if network.worker_ports is None:
        return 0
    low, high = network.worker_ports
    for port in range(high, low - 1, -1):
        if _free(port):
            return port
    raise SchedulerError(
        f"no free port in {low}-{high} for the dask scheduler",
        hint="close other dask clusters on this machine, or set network.scheduler_port",
    )


def _free(port: int) -> bool:
    """Nothing listens on ``port`` here (a closed scheduler's lingering connections do not count,
    as dask binds with SO_REUSEADDR too)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError:
            return False
        return True


def _options(options: Mapping[str, Any]) -> ClusterOptions:
    known = {field.name for field in dataclasses.fields(ClusterOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidValue(
            f"unknown HTCondor cluster option {unknown[0]!r}",
            hint=f"use one of {', '.join(sorted(known))}",
        )
    return ClusterOptions(**options)
