"""`batchml submit`, `batchml jobs` and `batchml cluster up`: batch work without a submit file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from batchml.backends import JobSpec, backend_for
from batchml.cli.arguments import bounded
from batchml.cli.terminal_text import safe
from batchml.config.resources import MAX_JOBS, Resources
from batchml.config.site_lookup import ResolvedSite, load_site
from batchml.config.units import format_duration, format_size
from batchml.errors import InvalidValue

_RESOURCE_FLAGS = ("cores", "memory", "disk", "gpus", "walltime", "gpu_capability", "mem_per_gpu")


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = groups.add_parser(
        "submit",
        help="render a job from a template and submit it",
        usage="batchml submit TEMPLATE [options] -- PROGRAM [ARGS...]",
        description="Everything after '--' is the command, passed to the job word for word.",
    )
    submit.add_argument("template", help="template name, e.g. 'train'")
    _site_and_resources(submit)
    submit.add_argument("--name", default=None, help="job name (default: the program's name)")
    submit.add_argument(
        "--workdir", default=None, help="where job files go (default: ./batchml-jobs/NAME)"
    )
    submit.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--item", action="append", default=None, help="one array item (repeatable)")
    submit.add_argument(
        "--python",
        default="python3",
        help="the Python that runs torchrun and a script or -m module given directly "
        "(default: %(default)s); `python train.py` runs the python you name",
    )
    submit.add_argument("--dry-run", action="store_true", help="print every file, submit nothing")
    submit.set_defaults(handler=cmd_submit)

    jobs = groups.add_parser("jobs", help="your jobs on a site (a table), or cancel some")
    jobs.add_argument("--site", default=None)
    jobs.set_defaults(handler=cmd_jobs, ids=[])
    jobs_cmds = jobs.add_subparsers(dest="command", metavar="SUBCOMMAND")
    listing = jobs_cmds.add_parser("list", help="the table (what plain `batchml jobs` prints)")
    listing.add_argument("--site", default=argparse.SUPPRESS)  # keeps `jobs --site S list`
    listing.add_argument("ids", nargs="*", help="only these jobs")
    cancel = jobs_cmds.add_parser("cancel", help="remove jobs, running or queued")
    cancel.add_argument("--site", default=argparse.SUPPRESS)
    cancel.add_argument("cancel_ids", nargs="+", metavar="ID")
    cancel.set_defaults(handler=cmd_cancel)

    cluster = groups.add_parser("cluster", help="an interactive dask cluster on a site")
    cluster_cmds = cluster.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    up = cluster_cmds.add_parser("up", help="start workers as jobs; Ctrl-C stops them")
    _site_and_resources(up)
    up.add_argument(
        "--jobs", type=bounded(1, MAX_JOBS), default=1, help="worker jobs (default: %(default)s)"
    )
    up.set_defaults(handler=cmd_cluster_up)


def _site_and_resources(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--site", default=None, help="site name or file (default: $BATCHML_SITE or local)"
    )
    for flag in _RESOURCE_FLAGS:
        kind = int if flag in ("cores", "gpus") else float if flag == "gpu_capability" else str
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=kind, default=None)


def _resources(args: argparse.Namespace, resolved: ResolvedSite, out: Console) -> Resources:
    """The request, and a line saying which values came from the site's defaults."""
    resources = Resources.from_site(resolved.site, **{k: getattr(args, k) for k in _RESOURCE_FLAGS})
    filled = []
    for name in sorted(resources.filled_from_site):
        value = getattr(resources, name)
        if value in (None, ()):
            continue
        shown = format_size(value) if name in ("memory", "disk", "gpu_memory") else value
        shown = format_duration(value) if name == "walltime" else shown
        filled.append(f"{name}={shown}")
    if filled:
        site = safe(repr(resolved.site.name))
        out.print(f"[dim]from site {site} defaults: {safe(', '.join(filled))}[/dim]")
    return resources


def cmd_submit(args: argparse.Namespace, out: Console) -> int:
    command = args.passthrough
    if not command:
        raise InvalidValue("no command to run", hint="end the line with: -- PROGRAM ARGS...")
    environment = {}
    for pair in args.env:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidValue(f"--env {pair!r} has no '='", hint="write --env KEY=VALUE")
        environment[key] = value
    resolved = load_site(args.site)
    backend = backend_for(resolved.site)
    name = Path(command[0]).name if args.name is None else args.name
    workdir = Path(args.workdir or Path("batchml-jobs") / _folder_name(name)).resolve()
    job = JobSpec(
        name=name,
        command=tuple(command),
        resources=_resources(args, resolved, out),
        workdir=workdir,
        template=args.template,
        environment=environment,
        array_items=tuple(args.item) if args.item else None,
        python=args.python,
        cwd=Path.cwd(),
    )
    if args.dry_run:
        rendered = backend.render(job)
        backend.lint(rendered, job)
        for file_name, text in rendered.files.items():
            out.rule(safe(workdir / file_name))
            out.print(safe(text, keep_newlines=True), end="")
        out.print(
            f"[dim]dry run: nothing submitted (the scheduler gets {rendered.submit_file})[/dim]"
        )
        return 0
    ids = backend.submit(job)
    where = f"{safe(resolved.site.name)}: {safe(' '.join(ids))} (files in {safe(workdir)})"
    out.print(f"submitted {len(ids)} job(s) to {where}")
    return 0


def _folder_name(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60].strip("._")
    return f"{safe or 'job'}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_jobs(args: argparse.Namespace, out: Console) -> int:
    backend = backend_for(load_site(args.site).site)
    table = Table("id", "name", "state", "GPUs", "runtime", "node", box=None, pad_edge=False)
    for info in backend.status(args.ids or None).values():
        runtime = format_duration(info.runtime) if info.runtime else "-"
        gpus, node = str(info.gpus), safe(info.node or "-")
        table.add_row(safe(info.id), safe(info.name), info.state.value, gpus, runtime, node)
    out.print(table)
    return 0


def cmd_cancel(args: argparse.Namespace, out: Console) -> int:
    stopped = backend_for(load_site(args.site).site).cancel(args.cancel_ids)
    ended = [job_id for job_id in dict.fromkeys(args.cancel_ids) if job_id not in stopped]
    if stopped:
        out.print(f"cancelled {safe(' '.join(stopped))}")
    if ended:
        out.print(f"already ended, left alone: {safe(' '.join(ended))}")
    return 0


def cmd_cluster_up(args: argparse.Namespace, out: Console) -> int:
    from distributed import Client

    resolved = load_site(args.site)
    backend = backend_for(resolved.site)
    resources = _resources(args, resolved, out)
    with backend.cluster(resources, jobs=args.jobs) as cluster, Client(cluster) as client:
        out.print(f"scheduler {cluster.scheduler_address} (TLS; credentials stay in this process)")
        if resolved.site.network.dashboard:
            out.print(f"dashboard {client.dashboard_link}")
        else:
            out.print("dashboard off (network.dashboard in the site file turns it on)")
        out.print("waiting for workers; Ctrl-C stops the cluster and its jobs")
        try:
            while True:
                workers = client.scheduler_info()["workers"]
                out.print(f"{len(workers)} worker(s) connected", end="\r")
                time.sleep(2)
        except KeyboardInterrupt:
            out.print("\nstopping")
    return 0
