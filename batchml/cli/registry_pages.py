"""`batchml registry annotate|card|html`: the registry written for people to read.

``annotate`` fills a version's notes (description, intended use, limitations,
tags), ``card`` writes one version's model card (Markdown or self-contained
HTML, by the file's suffix; Markdown on stdout without ``-o``), and ``html``
brings a folder of static pages up to date (an index, one page per model with
its aliases and their history, one card per version), writing only what changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from batchml.cli.terminal_text import safe
from batchml.errors import InvalidValue

CARD_FORMATS = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("annotate", help="set a version's description, intended use, ...")
    p.add_argument("ref", help="NAME/3, NAME@ALIAS ...")
    p.add_argument("--description", default=None)
    p.add_argument("--intended-use", default=None, help="what the model is for, and not for")
    p.add_argument("--limitations", default=None, help="what a user of the model must know")
    p.add_argument("--tag", action="append", default=None, help="replaces the tags (repeatable)")
    p.set_defaults(handler=cmd_annotate)
    p = commands.add_parser("card", help="one version's model card (Markdown or HTML)")
    p.add_argument("ref", help="NAME@ALIAS, NAME/3 ...")
    p.add_argument("-o", "--output", type=Path, default=None, help="card.md or card.html")
    p.set_defaults(handler=cmd_card)
    p = commands.add_parser("html", help="static pages to browse the registry (incremental)")
    p.add_argument("registry", nargs="?", type=Path, default=None, help="registry folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder of the pages")
    p.set_defaults(handler=cmd_html)


def cmd_annotate(args: argparse.Namespace, out: Console) -> int:
    from batchml.cli.registry import open_registry

    notes = open_registry(args).annotate(
        args.ref,
        description=args.description,
        tags=args.tag,
        intended_use=args.intended_use,
        limitations=args.limitations,
    )
    for key, value in notes.items():
        text = ", ".join(value) if isinstance(value, list) else str(value)
        out.print(f"{safe(key)}: {safe(text)}", soft_wrap=True)
    return 0


def cmd_card(args: argparse.Namespace, out: Console) -> int:
    from batchml._fs import check_destination, write_atomic
    from batchml.cli.registry import open_registry
    from batchml.registry.pages import model_card, to_html, to_markdown

    kind = "markdown" if args.output is None else CARD_FORMATS.get(args.output.suffix.lower())
    if kind is None:
        raise InvalidValue(
            f"{args.output}: a card is written as .md or .html, not {args.output.suffix!r}",
            hint="name the file card.md or card.html",
        )
    if args.output is not None:
        check_destination(args.output, "file", "the card")
    registry = open_registry(args)
    version = registry.get(args.ref)
    aliases = [a for a, n in registry.aliases(version.name).items() if n == version.version]
    document = model_card(version, aliases, hashed=True)
    text = to_markdown(document) if kind == "markdown" else to_html(document)
    if args.output is None:
        out.print(safe(text, keep_newlines=True), soft_wrap=True)
        return 0
    write_atomic(args.output, text.encode())
    out.print(f"wrote the card of {safe(version.uri)} to {safe(args.output)}", soft_wrap=True)
    return 0


def cmd_html(args: argparse.Namespace, out: Console) -> int:
    from batchml._fs import check_destination
    from batchml.cli.registry import default_root
    from batchml.registry import Registry
    from batchml.registry.pages import write_site

    registry = Registry(args.registry or args.root or default_root(), create=False)
    check_destination(args.output, "folder", "the pages' folder")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=out, transient=True) as bar:
        task = bar.add_task("pages", total=None)

        def progress(model: str, done: int, total: int) -> None:
            bar.update(task, description=safe(model), completed=done, total=total)

        report = write_site(registry, args.output, progress)
    out.print(
        f"{report.pages} pages in {safe(args.output)}: {report.written} written, "
        f"{report.unchanged} unchanged, {report.removed} removed; "
        f"open {safe(args.output / 'index.html')}",
        soft_wrap=True,
    )
    return 0
