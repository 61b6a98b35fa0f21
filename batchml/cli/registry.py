"""`batchml registry list|show|alias|history|verify|gc|diff|...`: the model registry from a shell.

The registry folder is ``--root``, else $BATCHML_REGISTRY, else
``$XDG_DATA_HOME/batchml/registry``. Every command accepts model URIs in any
form the library does (``name/3``, ``name@production``, ``batchml:name@sha256:...``).
Exit status: 0 fine, 1 corrupt or damaged files, a refusing filesystem or a lost
compare-and-swap, 2 bad input. ``list`` and ``show`` keep working beside damaged
versions and name them; ``verify`` names each with its file and fix. The
commands that write for people to read (``annotate``, ``card``, ``html``) are in
registry_pages.py, ``import-mlflow`` in registry_import.py.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from batchml.cli.arguments import count, duration_seconds
from batchml.cli.terminal_text import safe
from batchml.config.units import is_count
from batchml.errors import InvalidValue

if TYPE_CHECKING:
    from batchml.registry import Problem, Registry


def default_root() -> Path:
    if os.environ.get("BATCHML_REGISTRY"):
        return Path(os.environ["BATCHML_REGISTRY"])
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "batchml" / "registry"


def _version_or_none(text: str) -> int | None:
    """A version number or 'none' (the alias points nowhere)."""
    if text.lower() == "none":
        return None
    if is_count(text) and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a version number or 'none'")


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser("registry", help="list, inspect, verify and clean the model registry")
    group.add_argument(
        "--root", type=Path, default=None, help="registry folder (default: $BATCHML_REGISTRY)"
    )
    commands = group.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    p = commands.add_parser("list", help="the models, or the versions of one model")
    p.add_argument("name", nargs="?", help="a model name: list its versions")
    p.set_defaults(handler=cmd_list)
    p = commands.add_parser("show", help="one version: record, files, aliases, attachments")
    p.add_argument("ref", help="NAME, NAME/3, NAME@ALIAS or NAME@sha256:HEX")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=cmd_show)
    p = commands.add_parser("alias", help="point an alias at a version (compare-and-swap)")
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("version", type=_version_or_none, help="version number, or 'none' to remove")
    p.add_argument(
        "--expect",
        type=_version_or_none,
        default=argparse.SUPPRESS,
        help="move only if the alias points at this version now ('none': not set)",
    )
    p.set_defaults(handler=cmd_alias)
    p = commands.add_parser("history", help="every alias move and refused move")
    p.add_argument("name")
    p.add_argument("--alias", default=None)
    p.set_defaults(handler=cmd_history)
    p = commands.add_parser("verify", help="hash every file; exit 1 if any changed")
    p.add_argument("name", nargs="?")
    p.set_defaults(handler=cmd_verify)
    p = commands.add_parser("gc", help="remove interrupted publishes, optionally old versions")
    p.add_argument("--keep", type=count, default=None, help="keep this many best versions a model")
    p.add_argument("--metric", default=None, help="rank by this metric (default: newest)")
    p.add_argument("--maximize", action="store_true", help="higher metric is better")
    p.add_argument(
        "--grace",
        type=duration_seconds,
        default="1d",
        help="age after which another host's leftovers go (default: 1d)",
    )
    p.add_argument(
        "--damaged",
        action="store_true",
        help="also remove damaged versions no alias points at (see 'verify' first)",
    )
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=cmd_gc)
    p = commands.add_parser("diff", help="what differs between two versions")
    p.add_argument("old")
    p.add_argument("new")
    p.set_defaults(handler=cmd_diff)
    from batchml.cli import registry_import, registry_pages  # they use open_registry

    registry_pages.register(commands)
    registry_import.register(commands)


def open_registry(args: argparse.Namespace) -> Registry:
    from batchml.registry import Registry

    return Registry(args.root or default_root(), create=False)


def cmd_list(args: argparse.Namespace, out: Console) -> int:
    registry = open_registry(args)
    if args.name is None:
        rows: list[tuple[str, ...]] = []
        damaged = []
        for name in registry.models():
            numbers = registry.versions(name)
            aliases = ", ".join(f"{a}={v}" for a, v in registry.aliases(name).items())
            latest = str(max(numbers, default="-"))
            rows.append((safe(name), str(len(numbers)), latest, safe(aliases)))
            damaged += registry.damaged(name)
        _print_columns(out, ("model", "versions", "latest", "aliases"), rows)
        _print_problems(out, "[red]damaged[/red]", damaged)
        return 0
    by_version: dict[int, list[str]] = {}
    for alias, number in registry.aliases(args.name).items():
        by_version.setdefault(number, []).append(alias)
    survey = registry.survey(args.name)
    if not survey.versions and not survey.damaged:
        registry.resolve(args.name)  # raises NotFound with the hint
    rows = []
    for v in survey.versions:
        metrics = ", ".join(f"{k}={val:.4g}" for k, val in v.metrics.items())
        tags = ", ".join(v.annotations.get("tags", []))
        aliases = ", ".join(by_version.get(v.version, []))
        created = safe(str(v.manifest["created"])[:19])
        rows.append((str(v.version), created, safe(aliases), safe(metrics), safe(tags)))
    _print_columns(out, ("version", "created", "aliases", "metrics", "tags"), rows)
    _print_problems(out, "[red]damaged[/red]", survey.damaged)
    return 0


def _print_columns(out: Console, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Rows (cells already through ``safe``) in left-aligned columns under a bold header.

    Each line is one row, never wrapped, columns two spaces apart as in the
    other commands' tables. A listing runs to thousands of versions, and
    rich's Table measures and lays out every cell at a cost that grows to
    seconds there; here each cell is measured once and the whole listing is
    printed at once.
    """
    measured = [[(cell, _shown_width(cell)) for cell in row] for row in (header, *rows)]
    widths = [max(width for _, width in column) for column in zip(*measured, strict=True)]
    lines = []
    for row in measured:
        padded = zip(row, widths, strict=True)
        cells = [cell + " " * (column - width) for (cell, width), column in padded]
        lines.append("  ".join(cells).rstrip())
    lines[0] = f"[bold]{lines[0]}[/bold]"
    out.print("\n".join(lines), soft_wrap=True)


def _shown_width(cell: str) -> int:
    """The terminal columns ``cell`` takes once its markup escapes are read (wide characters: 2)."""
    return cell_len(Text.from_markup(cell).plain if "[" in cell else cell)


def _print_problems(out: Console, label: str, problems: list[Problem]) -> None:
    """One unwrapped line per problem: the file, what is wrong, what to do."""
    for problem in problems:
        line = f"{label} {safe(problem.render())}; fix: {safe(problem.fix)}"
        out.print(line, soft_wrap=True)


def cmd_show(args: argparse.Namespace, out: Console) -> int:
    from batchml.registry import CorruptVersion

    registry = open_registry(args)
    version = registry.get(args.ref)
    aliases = [a for a, n in registry.aliases(version.name).items() if n == version.version]
    attachments = {}
    for kind in version.attachments():
        try:
            attachments[kind] = str(version.attachment(kind).folder)
        except CorruptVersion as exc:
            attachments[kind] = f"damaged: {exc.message}"
    shown: dict[str, Any] = {
        "uri": version.uri,
        "digest": f"sha256:{version.digest}",
        "aliases": aliases,
        "attachments": attachments,
        **version.annotations,
        **{k: v for k, v in version.manifest.items() if k != "format_version"},
    }
    if args.format == "json":
        out.print_json(json.dumps(shown))
        return 0
    table = Table("field", "value", box=None, pad_edge=False, show_header=False)
    for key, value in shown.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        table.add_row(safe(key), safe(text))
    out.print(table)
    return 0


def cmd_alias(args: argparse.Namespace, out: Console) -> int:
    from batchml.registry import Expect

    registry = open_registry(args)
    expect = getattr(args, "expect", Expect.ANY)
    state = registry.alias(args.name, args.alias, args.version, expect=expect)
    target = "nothing" if state.version is None else f"version {state.version}"
    out.print(f"{safe(args.name)}@{safe(args.alias)} now points at {target}")
    return 0


def cmd_history(args: argparse.Namespace, out: Console) -> int:
    registry = open_registry(args)
    table = Table("time", "alias", "outcome", "from", "to", "who", box=None, pad_edge=False)
    for r in registry.history(args.name, args.alias):
        who = f"{r['user']}@{r['host']} pid {r['pid']}"
        target = f"{r['to']} (uncommitted)" if r["uncommitted"] else str(r["to"])
        cells = (str(r["time"])[:26], r["alias"], r["outcome"], str(r["from"]), target, who)
        table.add_row(*map(safe, cells))
    out.print(table)
    return 0


def cmd_verify(args: argparse.Namespace, out: Console) -> int:
    registry = open_registry(args)
    problems = registry.verify(args.name)
    _print_problems(out, "[red]corrupt[/red]", problems)
    if problems:
        return 1
    names = [args.name] if args.name else registry.models()
    versions = [version for n in names for version in registry.list(n)]
    attached = sum(len(v.attachments()) for v in versions)
    out.print(
        f"[green]ok[/green] {len(versions)} versions ({attached} attachments) "
        f"of {len(names)} models verified"
    )
    return 0


def cmd_gc(args: argparse.Namespace, out: Console) -> int:
    registry = open_registry(args)
    if (args.metric is not None or args.maximize) and args.keep is None:
        raise InvalidValue(
            "--metric and --maximize rank the versions --keep keeps, and --keep is not given",
            hint="add --keep N, or leave them out to collect only interrupted publishes",
        )
    if args.maximize and args.metric is None:
        raise InvalidValue("--maximize needs --metric", hint="add --metric NAME")
    if args.metric is not None:
        recorded = {m for n in registry.models() for v in registry.list(n) for m in v.metrics}
        if args.metric not in recorded:
            raise InvalidValue(
                f"no version records the metric {args.metric!r} (gc would keep every version)",
                hint=f"metrics recorded: {', '.join(sorted(recorded)) or 'none'}",
            )
    report = registry.gc(
        keep=args.keep,
        metric=args.metric,
        maximize=args.maximize,
        grace_s=args.grace,
        damaged=args.damaged,
        dry_run=args.dry_run,
    )
    verb = "would remove" if args.dry_run else "removed"
    removed = (
        ("staging folder", report.staging),
        ("interrupted publish", report.abandoned),
        ("version", report.versions),
        ("attachment", report.attachments),
        ("damaged version", report.damaged),
    )
    for label, paths in removed:
        for path in paths:
            out.print(f"{verb} {label} {safe(str(path))}", soft_wrap=True)
    _print_problems(out, "kept damaged", report.damaged_kept)
    out.print(f"gc: {verb} {sum(len(paths) for _, paths in removed)} entries")
    return 0


def cmd_diff(args: argparse.Namespace, out: Console) -> int:
    changes = open_registry(args).diff(args.old, args.new)
    if not changes:
        out.print(f"{safe(args.old)} and {safe(args.new)} record the same")
        return 0
    table = Table("key", safe(args.old), safe(args.new), box=None, pad_edge=False)
    for change in changes:
        table.add_row(safe(change.key), safe(_cell(change.old)), safe(_cell(change.new)))
    out.print(table)
    return 0


def _cell(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)
