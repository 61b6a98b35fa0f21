"""`batchml demo`: the main job end to end, on this machine or with trials on a site."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from batchml.cli.arguments import positive


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = groups.add_parser(
        "demo", help="sample -> HPO -> registry -> package -> inference -> report.html"
    )
    demo.add_argument(
        "--workdir", type=Path, default=Path("batchml-demo"), help="outputs (default: %(default)s)"
    )
    for flag, default, text in (
        ("--trials", 16, "HPO trials"),
        ("--events", 1_000_000, "events in the sample"),
        ("--files", 8, "ROOT files per class"),
        ("--workers", 2, "dask workers / batch jobs"),
    ):
        demo.add_argument(
            flag, type=positive, default=default, help=f"{text} (default: %(default)s)"
        )
    demo.add_argument(
        "--site", default="local", help="where trials run: a site name or file (default: local)"
    )
    demo.add_argument(
        "--data", nargs="+", metavar="URL", default=(),
        help="ROOT files or root:// URLs to use instead of the generated sample",
    )  # fmt: skip
    demo.add_argument(
        "--tree", default="events", help="tree of the --data files (default: %(default)s)"
    )
    demo.add_argument(
        "--target", default="label", help="0/1 class branch of --data (default: %(default)s)"
    )
    demo.add_argument(
        "--features", default=None, help="comma-separated feature branches (default: the sample's)"
    )
    demo.add_argument(
        "--weight", metavar="BRANCH", default=None,
        help="event-weight branch of --data for the report's ROC and working points "
        "(default: none; the sample's is 'weight')",
    )  # fmt: skip
    demo.add_argument(
        "--xrootd", metavar="URL", default=None,
        help="read the sample through this XRootD server (root://host:port), "
        "which must export the workdir",
    )  # fmt: skip
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace, out: Console) -> int:
    from batchml.demo.run import (  # pulls in torch, dask, uproot: only when asked
        DemoOptions,
        run_demo,
    )

    options = DemoOptions(
        workdir=args.workdir, events=args.events, files=args.files, trials=args.trials,
        workers=args.workers, site=args.site, data=tuple(args.data), xrootd=args.xrootd,
        tree=args.tree, target=args.target, weight=args.weight,
        features=tuple(args.features.split(",")) if args.features else (),
    )  # fmt: skip
    return run_demo(out, options)
