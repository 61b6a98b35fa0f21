"""`batchml demo`: the main job end to end on this machine."""

from __future__ import annotations

import argparse

from rich.console import Console


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = groups.add_parser("demo", help="the end-to-end main job on this machine")
    demo.add_argument("--workdir", default="batchml-demo", help="outputs (default: %(default)s)")
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


def cmd_demo(args: argparse.Namespace, out: Console) -> int:
    from batchml.demo import run_demo  # pulls in dask and uproot: only when asked

    return run_demo(
        out=out, workdir=args.workdir, events=args.events, files=args.files, workers=args.workers
    )
