"""What every backend's dask cluster does the same way: site paths, ports, GPU slots, worker jobs.

Three backends build clusters (local processes, Slurm jobs, HTCondor jobs) and
each once carried its own copy of these, which drifted apart: paths expanded in
opposite orders, the site's port range honoured on one scheduler only, GPU ids
parsed twice. They live here once, for the backends and for the worker side of
batchml.hpo (a trial's scratch folder, its GPU slot).

Paths: a site path is expanded where it is used (the submit host for log
folders, the worker for scratch) by ``expand_path``: variables first (``$NAME``,
``${NAME}``, ``${NAME:-default}``), then a leading ``~``. That order is the
shell's for what site files write: a default such as ``${LOGS:-~/logs}`` ends
in the home folder, as bash puts it there.
"""

from __future__ import annotations

import copy
import os
import re
import socket
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchml._compat import tornado_tls
from batchml._fs import write_new
from batchml.backends.base import JOB_END_ENV, SchedulerError
from batchml.config.resources import Resources
from batchml.config.site_schema import Network, Site
from batchml.config.templates import render

if TYPE_CHECKING:
    from distributed.security import Security

LOOPBACK = "127.0.0.1"
# ${NAME:-default}: the one shell expansion site files use beyond $NAME and ${NAME}.
_WITH_DEFAULT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")


def expand_path(path: str) -> str:
    """A site path as the shell would expand it here: variables first, then a leading ``~``.

    An unset variable without a default stays as written, as ``os.path.expandvars``
    leaves it; a caller that needs an absolute folder checks the result.
    """
    text = _WITH_DEFAULT.sub(lambda m: os.environ.get(m[1]) or m[2], path)
    return os.path.expanduser(os.path.expandvars(text))


def visible_gpus() -> list[str]:
    """The GPU ids this process may use, from CUDA_VISIBLE_DEVICES (none when unset or -1).

    Slurm gives indices such as "0,1", HTCondor ids such as "GPU-a0223334".
    """
    value = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return [gpu.strip() for gpu in value.split(",") if gpu.strip() not in ("", "-1")]


def gpu_slots(gpus_per_worker: int, workers: int | None = None) -> list[list[str]]:
    """Split the visible GPUs into disjoint slots of ``gpus_per_worker`` (one per worker).

    ``workers`` None: as many slots as the GPUs fill. Without GPUs, ``workers`` CPU
    slots, at least one.
    """
    gpus = visible_gpus()
    if gpus_per_worker == 0:
        return [[] for _ in range(workers or 1)]
    available = len(gpus) // gpus_per_worker
    wanted = available if workers is None else workers
    if wanted > available:
        raise SchedulerError(
            f"{wanted} workers with {gpus_per_worker} GPU(s) each need "
            f"{wanted * gpus_per_worker} GPUs, but CUDA_VISIBLE_DEVICES lists {len(gpus)}",
            hint="ask for fewer workers or GPUs per worker, or set CUDA_VISIBLE_DEVICES",
        )
    return [gpus[i * gpus_per_worker : (i + 1) * gpus_per_worker] for i in range(wanted)]


def scheduler_port(network: Network) -> int:
    """The site's scheduler port (checked free); else a free one in the worker range; else 0.

    Where a firewall sits between batch nodes and the login node (lxplus), the
    scheduler must listen on a port the site opens. A fixed port on a shared
    login node may be another user's already: that is said at once, rather than
    as dask's bind error. The range is searched from the top, away from the
    bottom where workers and nannies start their own search. A port is free
    when chosen and bound a moment later; a process taking it in between makes
    the scheduler fail with an error naming it.
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


def worker_arguments(
    resources: Resources, network: Network, pools: Mapping[str, float] | None = None
) -> list[str]:
    """dask-worker options: the resources dask schedules by (the job's GPUs, plus ``pools``),
    the site's open port range (both ends), the TLS fix both worker and nanny load, and
    the worker's web server on loopback without its dashboard."""
    declared: dict[str, float] = {"GPU": resources.gpus} if resources.gpus else {}
    declared.update(pools or {})
    preload = tornado_tls.PRELOAD
    arguments = ["--preload", preload, "--preload-nanny", preload]
    # A worker's own web pages (its tasks, live call stacks) are for nobody else on the node.
    arguments += ["--no-dashboard", "--dashboard-address", f"{LOOPBACK}:0"]
    if declared:
        arguments += ["--resources", ",".join(f"{k}={v}" for k, v in declared.items())]
    if network.worker_ports:
        ports = f"{network.worker_ports[0]}:{network.worker_ports[1]}"
        arguments += ["--worker-port", ports, "--nanny-port", ports]
    return arguments


def worker_prologue(site: Site, walltime: timedelta | None = None, gpus: int = 0) -> list[str]:
    """Shell lines a dask worker job runs first: the site's environment, then batchml's needs.

    Workers start a process per trial (batchml.hpo), which a daemonic worker
    process may not do, so dask is told so through its environment. A worker
    job's log is where a user debugs it: INFO, whatever the submitting shell said
    (sbatch exports the driver's environment, and the CLI quiets dask there).
    With a ``walltime`` the job notes when it will be ended, taken when it
    starts (not when it was queued), so a worker can refuse a trial it cannot
    finish. A job holding ``gpus`` on a site with ``mps`` runs its own CUDA MPS daemon for
    its trials (common/mps.sh.j2).
    """
    lines = [line for line in render("common/environment.sh.j2", site=site).splitlines() if line]
    if site.mps and gpus:
        mps = render("common/mps.sh.j2", scratch=site.paths.scratch_dir)
        lines += [line for line in mps.splitlines() if line]
    lines += [
        "export DASK_DISTRIBUTED__WORKER__DAEMON=False",
        "export DASK_LOGGING__DISTRIBUTED=info",
    ]
    if walltime is not None:
        lines.append(f"export {JOB_END_ENV}=$(( $(date +%s) + {int(walltime.total_seconds())} ))")
    return lines


def web_server(network: Network, host: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scheduler's web server: its options, and the dask configuration to create it under.

    dask always starts one, and given ``dashboard_address=":0"`` it listens on every
    interface, unauthenticated: its pages show worker addresses, folders and live
    call stacks to anyone who can reach the host. With ``network.dashboard`` it
    listens on ``host`` (default: the site's interface, loopback when it names
    none; an ssh tunnel reaches it there) at ``network.dashboard_port`` (any free
    port when unset). Without, it listens on loopback and serves only /health.
    """
    if not network.dashboard:
        off = {"dashboard": False, "dashboard_address": f"{LOOPBACK}:0"}
        return off, {"distributed.scheduler.http.routes": ["distributed.http.health"]}
    if host is None:
        from batchml._compat.dask_jobqueue import interface_address

        host = interface_address(network.interface) if network.interface else LOOPBACK
    return {"dashboard": True, "dashboard_address": f"{host}:{network.dashboard_port or 0}"}, {}


def worker_credentials(security: Security, folder: Path) -> Security:
    """``security`` with the workers' credentials as files in ``folder`` (a private one).

    Security.temporary() holds its keys in memory, and a worker process needs files.
    dask-jobqueue would write them itself, as temporary files deleted when collected:
    at exit, in no set order with the folder that holds them, each then says so
    on stderr.
    """
    with_files = copy.copy(security)
    for key, value in security.get_tls_config_for_role("worker").items():
        if value and "\n" in value:  # the PEM text itself, not a path
            path = folder / f"worker-{key}.pem"
            write_new(path, value.encode(), 0o600)
            setattr(
                with_files, "tls_ca_file" if key == "ca_file" else f"tls_worker_{key}", str(path)
            )
    return with_files


def worker_python(chosen: str | None = None) -> str:
    """The Python workers start with: ``chosen``, else the driver's own (same packages)."""
    return chosen or sys.executable
