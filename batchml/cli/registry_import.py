"""`batchml registry import-mlflow URI [--model NAME ...]`: move an MLflow registry into batchml.

Shows a progress bar over the versions, then what happened to each: imported
(with how a pytorch model was converted), already imported and unchanged,
changed at the source since it was imported (reported, never overwritten),
aliases set, and aliases batchml already has elsewhere (reported with the
command that would move them). Exit 0 when the import ran, 2 on bad input.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from batchml.cli.terminal_text import safe

_NOTES = ("run", "torch", "input_example", "program")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("import-mlflow", help="import an MLflow model registry (idempotent)")
    p.add_argument("uri", help="mlruns folder, sqlite:///PATH, database URI or http://host:port")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME[=BATCHML_NAME]",
        help="import only this registered model, optionally under another name (repeatable)",
    )
    p.set_defaults(handler=cmd_import)


def cmd_import(args: argparse.Namespace, out: Console) -> int:
    from batchml.cli.registry import default_root
    from batchml.registry.mlflow_import import import_mlflow

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=out, transient=True) as bar:
        task = bar.add_task("reading the MLflow store", total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, description=safe(label or "done"), completed=done, total=total)

        report = import_mlflow(args.root or default_root(), args.uri, args.model, progress)
    for item in report.imported:
        out.print(f"imported {safe(item.source)} as {safe(item.uri)}", soft_wrap=True)
        for key in _NOTES:
            if key in item.how:
                out.print(f"  {safe(key)}: {safe(item.how[key])}", soft_wrap=True)
    for source, why in report.skipped:
        out.print(f"[yellow]skipped[/yellow] {safe(source)}: {safe(why)}", soft_wrap=True)
    for changed in report.changed:
        out.print(
            f"[yellow]changed at the source[/yellow] {safe(changed.source)} since it was "
            f"imported as {safe(changed.uri)} ({safe(', '.join(changed.fields))}): not overwritten",
            soft_wrap=True,
        )
    for name, alias, number in report.aliases_set:
        out.print(f"alias {safe(name)}@{safe(alias)} -> version {number}", soft_wrap=True)
    for note in report.alias_conflicts:
        out.print(
            f"[yellow]alias not moved[/yellow] {safe(note.name)}@{safe(note.alias)} points at "
            f"version {note.found}; the source puts it on what is version {note.wanted} here. "
            f"To follow the source: batchml registry alias {safe(note.name)} {safe(note.alias)} "
            f"{note.wanted} --expect {note.found}",
            soft_wrap=True,
        )
    summary = (
        f"{len(report.imported)} versions imported, {len(report.unchanged)} already imported "
        f"and unchanged, {len(report.changed)} changed at the source, {len(report.skipped)} "
        f"skipped, from {safe(report.source)}"
    )
    out.print(summary if report.imported else f"nothing new to import: {summary}", soft_wrap=True)
    return 0
