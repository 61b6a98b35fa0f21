"""`batchml site list|show|validate`: what a site admin and a user check first."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from batchml.cli.terminal_text import safe
from batchml.config.site_lookup import BUILTIN, ResolvedSite, list_sites, load_site, search_dirs
from batchml.errors import BatchmlError


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    site = groups.add_parser("site", help="list, show and validate site configurations")
    commands = site.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    p = commands.add_parser("list", help="every site batchml can find, and where")
    p.set_defaults(handler=cmd_list)
    p = commands.add_parser("show", help="a site fully resolved, each value with its origin")
    p.add_argument(
        "name",
        nargs="?",
        default=None,
        help="site name or path to a .yaml file (default: $BATCHML_SITE, else 'local')",
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_show)
    p = commands.add_parser("validate", help="check site files; exit 2 if any is invalid")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=cmd_validate)


def cmd_list(args: argparse.Namespace, out: Console) -> int:
    table = Table("name", "scheduler", "from", "file", "description", box=None, pad_edge=False)
    for name, directory, path in list_sites():
        scheduler: str
        try:
            resolved = load_site(path)
            scheduler, summary = resolved.site.scheduler, resolved.site.summary()
        except BatchmlError:
            scheduler, summary = "[red]invalid[/red]", f"run: batchml site validate {path}"
        table.add_row(safe(name), scheduler, directory.label, safe(path), safe(summary))
    out.print(table)
    order = ", ".join(f"{d.label} ({d.path})" for d in search_dirs())
    out.print(f"Look-up order: {safe(order)}", style="dim")
    return 0


def cmd_show(args: argparse.Namespace, out: Console) -> int:
    resolved = load_site(args.name)
    data = resolved.site.model_dump(mode="json")
    origins = _origins(resolved, data)
    if args.format == "json":
        out.print_json(json.dumps({"site": data, "origins": origins}))
        return 0
    files = safe(" <- ".join(str(p) for p in resolved.files))
    out.print(f"[bold]{safe(resolved.site.name)}[/bold] ({resolved.site.scheduler}) from {files}")
    values = dict(_flatten(data))
    table = Table("field", "value", "from", box=None, pad_edge=False)
    for field, origin in origins.items():
        shown = f"[dim]{origin}[/dim]" if origin == BUILTIN else safe(_short_origin(origin))
        table.add_row(safe(field), safe(_show_value(values[field])), shown)
    out.print(table)
    if resolved.site.scheduler == "slurm":
        out.print(f"Slurm access: {slurm_access()}")
    return 0


def slurm_access() -> str:
    """How batchml talks to Slurm here, as `site show` reports it.

    pyslurm only works against the exact Slurm release it was built for (PyPI has
    25.11 only), so batchml uses the command-line tools, which every release has.
    """
    from importlib.util import find_spec

    pyslurm = "installed, not used" if find_spec("pyslurm") else "not installed"
    return f"command-line tools (sbatch --parsable, squeue --json, scancel); pyslurm {pyslurm}"


def cmd_validate(args: argparse.Namespace, out: Console) -> int:
    from batchml.cli import report_error

    status = 0
    for path in args.files:
        try:
            resolved = load_site(Path(path))
        except BatchmlError as exc:
            report_error(exc, verbose=args.verbose, no_color=args.no_color)
            status = max(status, exc.exit_code)
            continue
        out.print(
            f"[green]ok[/green] {safe(path)}: site {safe(repr(resolved.site.name))}, "
            f"scheduler {resolved.site.scheduler}"
        )
    return status


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


def _origins(resolved: ResolvedSite, data: dict[str, Any]) -> dict[str, str]:
    return {field: resolved.origin_of(field) for field, _ in _flatten(data) if field != "name"}


def _short_origin(origin: str) -> str:
    """'shipped lxplus.yaml' rather than a long path; the full paths head the table."""
    for directory in search_dirs():
        if Path(origin).parent == directory.path:
            return f"{directory.label} {Path(origin).name}"
    return origin
