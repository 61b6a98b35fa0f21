"""The `batchml` command: a parser, thin sub-commands, and one error boundary.

The library never exits or prints errors itself; ``main`` is the only place
that turns a BatchmlError into an ``error:`` line, a ``hint:`` line and an exit
status (2 for bad input, 1 for failures), so scripts can tell them apart.
Output is coloured on a terminal and plain when piped (or with NO_COLOR).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from batchml import __version__
from batchml.errors import BatchmlError
from batchml.site_files import BUILTIN, ResolvedSite, list_sites, load_site, search_dirs

log = logging.getLogger("batchml")


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        rows: list[tuple[str, Any]] = []
        for key, inner in value.items():
            rows += _flatten(inner, f"{prefix}.{key}" if prefix else key)
        return rows
    return [(prefix, value)]


def _show_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def cmd_site_list(args: argparse.Namespace, out: Console) -> int:
    table = Table("name", "scheduler", "from", "file", "description", box=None, pad_edge=False)
    for name, directory, path in list_sites():
        scheduler: str
        try:
            resolved = load_site(path)
            scheduler, summary = resolved.site.scheduler, resolved.site.summary()
        except BatchmlError:
            scheduler, summary = "[red]invalid[/red]", f"run: batchml site validate {path}"
        table.add_row(name, scheduler, directory.label, escape(str(path)), summary)
    out.print(table)
    out.print(
        "Look-up order: " + ", ".join(f"{d.label} ({d.path})" for d in search_dirs()), style="dim"
    )
    return 0


def cmd_site_show(args: argparse.Namespace, out: Console) -> int:
    resolved = load_site(args.name)
    data = resolved.site.model_dump(mode="json")
    if args.format == "json":
        out.print_json(json.dumps({"site": data, "origins": _origins(resolved, data)}))
        return 0
    out.print(
        f"[bold]{resolved.site.name}[/bold] ({resolved.site.scheduler}) from "
        + escape(" <- ".join(str(p) for p in resolved.files))
    )
    table = Table("field", "value", "from", box=None, pad_edge=False)
    for field, origin in _origins(resolved, data).items():
        value = _show_value(dict(_flatten(data))[field])
        shown = f"[dim]{origin}[/dim]" if origin == BUILTIN else escape(_short_origin(origin))
        table.add_row(field, escape(value), shown)
    out.print(table)
    return 0


def _origins(resolved: ResolvedSite, data: dict[str, Any]) -> dict[str, str]:
    return {field: resolved.origin_of(field) for field, _ in _flatten(data) if field != "name"}


def _short_origin(origin: str) -> str:
    """'shipped lxplus.yaml' rather than a long path; the full paths head the table."""
    for directory in search_dirs():
        if Path(origin).parent == directory.path:
            return f"{directory.label} {Path(origin).name}"
    return origin


def cmd_site_validate(args: argparse.Namespace, out: Console) -> int:
    status = 0
    for path in args.files:
        try:
            resolved = load_site(Path(path))
        except BatchmlError as exc:
            report_error(exc, verbose=args.verbose, no_color=args.no_color)
            status = max(status, exc.exit_code)
            continue
        out.print(
            f"[green]ok[/green] {escape(path)}: site {resolved.site.name!r}, "
            f"scheduler {resolved.site.scheduler}"
        )
    return status


def cmd_demo(args: argparse.Namespace, out: Console) -> int:
    from batchml.demo import run_demo  # pulls in dask and uproot: only when asked

    return run_demo(
        out=out, workdir=args.workdir, events=args.events, files=args.files, workers=args.workers
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command-line grammar (public so docs and tests can inspect it)."""
    parser = argparse.ArgumentParser(
        prog="batchml",
        description="Hyper-parameter searches of PyTorch models on HTCondor and Slurm GPUs, "
        "from ROOT ntuples to a versioned, packaged model.",
        epilog="Start with 'batchml demo', then 'batchml site list'.",
    )
    parser.add_argument("--version", action="version", version=f"batchml {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--no-color", action="store_true", help="plain output, also when on a terminal"
    )
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    site = groups.add_parser("site", help="list, show and validate site configurations")
    site_cmds = site.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    p = site_cmds.add_parser("list", help="every site batchml can find, and where")
    p.set_defaults(handler=cmd_site_list)
    p = site_cmds.add_parser("show", help="a site fully resolved, each value with its origin")
    p.add_argument(
        "name",
        nargs="?",
        default=None,
        help="site name or path to a .yaml file (default: $BATCHML_SITE, else 'local')",
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_site_show)
    p = site_cmds.add_parser("validate", help="check site files; exit 2 if any is invalid")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=cmd_site_validate)

    demo = groups.add_parser("demo", help="the end-to-end main job on this machine")
    demo.add_argument(
        "--workdir", default="batchml-demo", help="where outputs go (default: %(default)s)"
    )
    demo.add_argument(
        "--events", type=int, default=1_000_000, help="events in the sample (default: %(default)s)"
    )
    demo.add_argument(
        "--files", type=int, default=8, help="ROOT files per class (default: %(default)s)"
    )
    demo.add_argument(
        "--workers", type=int, default=2, help="local dask workers (default: %(default)s)"
    )
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status instead of exiting."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    piped = not sys.stdout.isatty()
    out = Console(no_color=args.no_color or None, highlight=False, width=160 if piped else None)
    handler: Callable[[argparse.Namespace, Console], int] = args.handler
    try:
        return handler(args, out)
    except BatchmlError as exc:
        report_error(exc, verbose=args.verbose, no_color=args.no_color)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def report_error(exc: BatchmlError, *, verbose: bool, no_color: bool) -> None:
    """The one way an error reaches the user: an error line, a hint line, no traceback."""
    if verbose:
        log.debug("traceback", exc_info=exc)
    err = Console(stderr=True, no_color=no_color or None, highlight=False, soft_wrap=True)
    err.print(f"[bold red]error:[/bold red] {escape(exc.message)}")
    if exc.hint:
        err.print(f"[yellow]hint:[/yellow] {escape(exc.hint)}")


if __name__ == "__main__":
    sys.exit(main())
