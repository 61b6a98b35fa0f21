"""`batchml data inspect|bench`: what is in these files, and how fast can we read them here?

``bench`` runs the full pipeline (the same RootDataset a training job uses), so
its events/s and wait figures are what a trial would see on this node.
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from batchml.cli.arguments import count, positive
from batchml.cli.terminal_text import safe
from batchml.units import is_count


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = groups.add_parser("data", help="inspect ROOT files and benchmark reading them")
    commands = data.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    p = commands.add_parser("inspect", help="trees, branches, types, entries and sizes")
    p.add_argument("urls", nargs="+", metavar="URL", help="paths, globs or root:// URLs")
    p.set_defaults(handler=cmd_inspect)
    p = commands.add_parser("bench", help="events/s and MB/s through the full pipeline")
    p.add_argument("urls", nargs="+", metavar="URL", help="paths, globs or root:// URLs")
    p.add_argument("--features", nargs="+", required=True, metavar="BRANCH")
    p.add_argument("--tree", default="events")
    p.add_argument("--step-size", default="50 MB", help="entries (a number) or a size")
    p.add_argument("--batch-size", type=positive, default=4096)
    p.add_argument("--workers", type=count, default=0, help="DataLoader worker processes")
    p.add_argument("--shuffle-buffer", type=count, default=0, help="rows mixed across ranges")
    p.set_defaults(handler=cmd_bench)


def cmd_inspect(args: argparse.Namespace, out: Console) -> int:
    import uproot

    from batchml.data.source import open_file_trees, resolve

    for url in resolve(args.urls):
        with open_file_trees(url) as trees:
            for name, tree in trees.items():
                is_ttree = isinstance(tree, uproot.behaviors.TTree.TTree)
                out.print(
                    f"[bold]{safe(url)}[/bold] {safe(name)} "
                    f"({'TTree' if is_ttree else 'RNTuple'}): {tree.num_entries} entries"
                )
                table = Table("branch", "type", "compressed", "uncompressed", box=None)
                for branch, item in tree.items():  # by name, '/' in a name is a path
                    sizes = (
                        (f"{item.compressed_bytes:,}", f"{item.uncompressed_bytes:,}")
                        if is_ttree
                        else ("-", "-")
                    )
                    table.add_row(safe(branch), safe(item.typename), *sizes)
                out.print(table)
    return 0


def cmd_bench(args: argparse.Namespace, out: Console) -> int:
    from batchml.data import RootDataset

    step: int | str = int(args.step_size) if is_count(args.step_size) else args.step_size
    ds = RootDataset(
        args.urls,
        args.tree,
        features=args.features,
        step_size=step,
        batch_size=args.batch_size,
        shuffle_buffer=args.shuffle_buffer,
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
