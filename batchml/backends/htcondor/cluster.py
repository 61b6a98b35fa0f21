"""dask workers as HTCondor jobs: dask-jobqueue's HTCondorCluster, configured from the site.

What batchml adds to a bare HTCondorCluster, and why:

- the submit entries of plain jobs (request_*, flavour or MaxRuntime, WantOS,
  container, credentials), so a worker asks for what a training job would;
- ``--resources GPU=N`` on every worker, so each trial claims its own GPU slot;
- the site's interface and ports: where a firewall sits between the batch
  nodes and the login node (lxplus), the scheduler listens on the port the
  site opens and the workers and their nannies in the site's range (the
  shipped lxplus.yaml names CERN's sources; batchml.backends._worker);
- TLS with per-cluster temporary credentials by default. A scheduler on a
  shared login node is otherwise open to every user of that node, and runs
  their code as you. The credentials travel with each worker job (HTCondor
  file transfer into the job's private scratch folder), so no shared
  filesystem is needed; on the submit side they sit in a folder only the user
  can read (0700, files 0600), removed with the cluster.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import dask
from distributed.security import Security

from batchml._compat import tornado_tls
from batchml._compat.dask_jobqueue import (
    HTCondorCluster,
    HTCondorJob,
    KeepsSubmitError,
    executable,
    log_directory,
    rewrite_worker_command,
    submit_entries,
)
from batchml.backends._worker import (
    expand_path,
    scheduler_port,
    web_server,
    worker_arguments,
    worker_credentials,
    worker_prologue,
    worker_python,
)
from batchml.backends.base import ClusterOptions
from batchml.backends.htcondor.lint import parse_submit
from batchml.config.resources import Resources
from batchml.config.site_schema import Site
from batchml.config.submit_language import submit_value

# dask-jobqueue's own request lines, replaced by batchml's request_* entries.
_REPLACED_DIRECTIVES = ["RequestCpus", "RequestMemory", "RequestDisk"]


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
        rewrite_worker_command(self, lambda command: _for_submit(command, files))
        entries = submit_entries(self)
        folder = log_directory(self)
        if folder:
            entries["LogDirectory"] = submit_value(folder)
        if files:
            entries.update(
                {
                    "transfer_input_files": submit_value(",".join(files)),
                    "should_transfer_files": "YES",
                    "when_to_transfer_output": "ON_EXIT",
                }
            )

    def job_script(self) -> str:
        text: str = super().job_script()
        parse_submit(text, "the dask worker's submit description", executable=executable(self))
        return text


def _for_submit(command: str, tls_files: list[str]) -> str:
    """The worker's command with its TLS files named as transferred (by name), in the
    submit language."""
    for path in tls_files:
        command = command.replace(path, os.path.basename(path))
    return submit_value(command, embedded=True)


def make_cluster(
    site: Site, resources: Resources, entries: dict[str, str], options: ClusterOptions
) -> HTCondorCluster:
    """An HTCondorCluster for ``site`` whose worker jobs carry the submit ``entries``."""
    network = site.network
    condor = site.htcondor
    tornado_tls.install()  # for this driver's scheduler and client
    tls_dir = tempfile.mkdtemp(prefix="batchml-dask-tls-")  # mode 0700
    security = options.credentials()
    web, config = web_server(network)
    with dask.config.set(config):
        cluster = HTCondorCluster(
            job_cls=TransferredTLSJob,  # type: ignore[arg-type]  # dask-jobqueue annotates a class as an instance
            cores=resources.cores,
            memory=str(resources.memory),
            disk=str(resources.disk),
            processes=1,
            python=worker_python(options.python),
            interface=network.interface,
            security=security and worker_credentials(security, Path(tls_dir)),
            scheduler_options={"port": scheduler_port(network), **web},
            job_extra_directives=entries,
            job_directives_skip=_REPLACED_DIRECTIVES,
            worker_extra_args=worker_arguments(resources, network, options.worker_resources),
            job_script_prologue=worker_prologue(site, resources.walltime, resources.gpus),
            submit_command_extra=["-spool"] if condor is not None and condor.spool else [],
            log_directory=os.fspath(options.log_directory or expand_path(site.paths.log_dir)),
        )
    weakref.finalize(cluster, shutil.rmtree, tls_dir, True)
    if options.jobs:
        cluster.scale(jobs=options.jobs)
    return cluster
