"""`batchml data inspect|bench`: what is in these files, and how fast can we read them here?

``bench`` runs the full pipeline (the same RootDataset a training job uses), so
its events/s and wait figures are what a trial would see on this node.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from batchml.cli.arguments import count, positive
from batchml.cli.terminal_text import safe
from batchml.config.units import is_count


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = groups.add_parser("data", help="inspect ROOT files and benchmark reading them")
    commands = data.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    p = commands.add_parser(
        "inspect",
        help="trees, branches, types, entries and sizes",
        description="Trees and RNTuples of each file, with their branches' types and sizes. "
        "Exits 2 if a file holds no tree (it then says what the file holds).",
    )
    p.add_argument("urls", nargs="+", metavar="URL", help="paths, globs or root:// URLs")
    p.set_defaults(handler=cmd_inspect)
    p = commands.add_parser("bench", help="events/s and MB/s through the full pipeline")
    p.add_argument("urls", nargs="+", metavar="URL", help="paths, globs or root:// URLs")
    p.add_argument("--features", nargs="+", default=[], metavar="BRANCH")
    p.add_argument(
        "--jagged",
        nargs="+",
        default=[],
        type=_jagged,
        metavar="BRANCH=LENGTH",
        help="jagged branches, each padded or clipped to LENGTH columns",
    )
    p.add_argument("--target", help="the target branch")
    p.add_argument("--weights", help="the weight branch")
    p.add_argument("--cut", help="a cut such as 'nJet >= 2 and any(Jet_pt > 30)'")
    p.add_argument("--tree", default="events")
    p.add_argument("--step-size", default="50 MB", help="entries (a number) or a size")
    p.add_argument("--batch-size", type=positive, default=4096)
    p.add_argument("--workers", type=count, default=0, help="DataLoader worker processes")
    p.add_argument(
        "--shuffle-buffer",
        help="rows mixed across ranges: a size or a number of rows (0: none; "
        "default: the library's, 32 MB)",
    )
    p.set_defaults(handler=cmd_bench)


def _jagged(text: str) -> tuple[str, int]:
    branch, _, length = text.rpartition("=")
    if not branch or not length.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not BRANCH=LENGTH, such as Jet_pt=4")
    return branch, int(length)


def cmd_inspect(args: argparse.Namespace, out: Console) -> int:
    from batchml.data import listing
    from batchml.data.errors import TreeNotFoundError
    from batchml.data.source import open_file_trees, resolve

    treeless: list[str] = []
    for url in resolve(args.urls):
        with open_file_trees(url) as (trees, others):
            if not trees:
                treeless.append(f"{url} ({', '.join(others) or 'nothing'})")
            for name, tree in trees.items():
                kind = "RNTuple" if listing.is_rntuple(tree) else "TTree"
                out.print(
                    f"[bold]{safe(url)}[/bold] {safe(name)} ({kind}): "
                    f"{tree.num_entries} entries"
                )
                table = Table("branch", "type", "compressed", "uncompressed", box=None)
                found = listing.branches(tree)
                for branch in found:
                    mark = "*" if branch.embedded else ""
                    table.add_row(
                        safe(branch.name),
                        safe(branch.typename),
                        f"{branch.stored:,}{mark}",
                        f"{branch.inflated:,}{mark}",
                    )
                out.print(table)
                if any(branch.embedded for branch in found):
                    out.print("* includes baskets kept in the tree's metadata, counted inflated")
    if treeless:
        raise TreeNotFoundError(
            f"no TTree or RNTuple in {'; '.join(treeless)}",
            hint="batchml reads trees; give the files that hold them",
        )
    return 0


def cmd_bench(args: argparse.Namespace, out: Console) -> int:
    from batchml.data import RootDataset

    step: int | str = int(args.step_size) if is_count(args.step_size) else args.step_size
    options: dict[str, Any] = {}
    if args.shuffle_buffer is not None:
        given = args.shuffle_buffer
        options["shuffle_buffer"] = int(given) if is_count(given) else given
    ds = RootDataset(
        args.urls,
        args.tree,
        features=args.features,
        jagged=dict(args.jagged),
        target=args.target,
        weights=args.weights,
        cut=args.cut,
        step_size=step,
        batch_size=args.batch_size,
        **options,
    )
    columns = [TextColumn("reading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    began = time.perf_counter()
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task("read", total=ds.stream.num_entries)
        for batch in ds.loader(num_workers=args.workers):
            progress.advance(task, len(batch.entry))
    elapsed = time.perf_counter() - began
    ds.close()
    stats = ds.stats
    out.print(
        f"{stats.events_read:,.0f} events in {elapsed:.2f} s: "
        f"{stats.events_read / elapsed:,.0f} events/s, {stats.bytes_read / 1e6 / elapsed:.1f} MB/s"
    )
    out.print(stats.summary())
    return 0
