"""`batchml package build|bench`: a registry version -> a validated, benchmarked ONNX folder.

``build`` resolves the model URI in the registry (``--root``, else
$BATCHML_REGISTRY), exports, validates against torch and writes the folder
described in batchml/package/build.py, showing each step as it runs; with
``--publish`` the folder is attached to that version in the registry. ``bench`` measures
an existing package again (on the machine that will serve it) and refreshes
its MANIFEST. Exit status: 0 fine, 1 export or validation failed, 2 bad input.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from batchml.cli.registry import default_root
from batchml.cli.terminal_text import safe
from batchml.package.build import DEFAULT_OPSET


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser("package", help="export a registry version to ONNX and measure it")
    commands = group.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    p = commands.add_parser("build", help="registry version -> model.onnx, validation, Triton")
    p.add_argument("model_uri", help="NAME, NAME/3, NAME@ALIAS or NAME@sha256:HEX")
    p.add_argument("-o", "--output", type=Path, required=True, help="new folder to write")
    p.add_argument("--root", type=Path, default=None, help="registry folder")
    p.add_argument(
        "--opset",
        type=_positive,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, written exactly or refused (default: {DEFAULT_OPSET}, torch's exporter "
        "writes it without conversion, as ONNX IR 8, which ONNX Runtime 1.16 as in CMSSW loads; "
        "1.16 runs opsets up to 19)",
    )
    p.add_argument("--max-batch", type=_positive, default=256, help="largest batch (256)")
    p.add_argument("--int8", action="store_true", help="also write a dynamic int8 model")
    p.add_argument("--fp16", action="store_true", help="also write a float16 model (GPU)")
    p.add_argument("--no-bench", action="store_true", help="skip the latency table")
    p.add_argument("--publish", action="store_true", help="attach the package to the version")
    p.set_defaults(handler=cmd_build)
    p = commands.add_parser("bench", help="measure a package again; rewrite benchmark.csv/png")
    p.add_argument("folder", type=Path)
    p.add_argument("--max-batch", type=_positive, default=None, help="default: the package's")
    p.add_argument("--seconds", type=float, default=0.5, help="per measured point (0.5)")
    p.set_defaults(handler=cmd_bench)


@contextmanager
def _steps(out: Console) -> Iterator[Callable[[str], None]]:
    """A spinner naming the running step; each finished step stays printed with a tick."""
    with out.status("starting") as status:
        current: list[str] = []

        def step(text: str) -> None:
            if current:
                out.print(f"[green]✓[/green] {safe(current[0])}")
            current[:] = [text]
            status.update(safe(text))

        yield step
        if current:
            out.print(f"[green]✓[/green] {safe(current[0])}")


def cmd_build(args: argparse.Namespace, out: Console) -> int:
    from batchml.package import BuildOptions, build, publish_package
    from batchml.registry import Registry

    registry = Registry(args.root or default_root(), create=False)
    version = registry.get(args.model_uri)
    options = BuildOptions(
        opset=args.opset,
        max_batch=args.max_batch,
        int8=args.int8,
        fp16=args.fp16,
        bench_seconds=None if args.no_bench else 0.2,
    )
    with _steps(out) as step:
        folder = build(version, args.output, options, progress=step)
    out.print(f"packaged {safe(version.uri)} into {safe(folder)}")
    if args.publish:
        attached = publish_package(registry, folder)
        where = f"{safe(attached.kind)}: {safe(attached.folder)}"
        out.print(f"attached to {safe(version.uri)} as {where}")
    return 0


def cmd_bench(args: argparse.Namespace, out: Console) -> int:
    import json

    from batchml.package.bench import benchmark
    from batchml.package.manifest import write_manifest

    meta = json.loads((args.folder / "metadata.json").read_text())
    with _steps(out) as step:
        step("measuring latency and throughput")
        points = benchmark(
            args.folder, max_batch=args.max_batch or meta["max_batch"], seconds=args.seconds
        )
        step("refreshing the MANIFEST")
        write_manifest(args.folder)
    table = Table("threads", "batch", "p50 ms", "p99 ms", "rows/s", box=None, pad_edge=False)
    for p in points:
        table.add_row(
            str(p.intra_op_threads),
            str(p.batch),
            f"{p.p50_ms:.3f}",
            f"{p.p99_ms:.3f}",
            f"{p.rows_per_s:,.0f}",
        )
    out.print(table)
    return 0
