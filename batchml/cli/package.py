"""`batchml package build|bench|serve`: a registry version -> a validated, benchmarked ONNX folder.

``build`` resolves the model URI in the registry (``--root``, else
$BATCHML_REGISTRY), exports, validates against torch and writes the folder
described in batchml/package/build.py, showing each step as it runs; with
``--publish`` the folder is attached to that version in the registry. ``bench`` measures
an existing package again (on the machine that will serve it) and refreshes
its MANIFEST. ``serve`` runs a real Triton server on the package's repository
until Ctrl-C, SIGTERM or SIGHUP (exit 130, 143 or 129, the server stopped).
Exit status: 0 fine, 1 export or validation failed, 2 bad input.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from batchml.cli.arguments import port, positive, positive_seconds
from batchml.cli.registry import default_root
from batchml.cli.terminal_text import safe
from batchml.package.build import DEFAULT_OPSET
from batchml.package.triton import BACKENDS, TritonOptions

if TYPE_CHECKING:
    from batchml.package.triton.server import TritonServer


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser("package", help="export a registry version to ONNX and measure it")
    commands = group.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    p = commands.add_parser("build", help="registry version -> model.onnx, validation, Triton")
    p.add_argument("model_uri", help="NAME, NAME/3, NAME@ALIAS or NAME@sha256:HEX")
    p.add_argument("-o", "--output", type=Path, required=True, help="new folder to write")
    p.add_argument("--root", type=Path, default=None, help="registry folder")
    p.add_argument(
        "--opset",
        type=positive,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, written exactly or refused (default: {DEFAULT_OPSET}, torch's exporter "
        "writes it without conversion, as ONNX IR 8, which ONNX Runtime 1.16 as in CMSSW loads; "
        "1.16 runs opsets up to 19)",
    )
    p.add_argument("--max-batch", type=positive, default=256, help="largest batch (256)")
    p.add_argument("--int8", action="store_true", help="also write a dynamic int8 model")
    p.add_argument("--fp16", action="store_true", help="also write a float16 model (GPU)")
    p.add_argument("--no-bench", action="store_true", help="skip the latency table")
    p.add_argument("--publish", action="store_true", help="attach the package to the version")
    p.add_argument(
        "--triton-backend",
        choices=BACKENDS,
        default="onnxruntime",
        help="Triton backend of triton/: onnxruntime (stock servers) or python (model.py "
        "running ONNX Runtime, for servers with only the python backend, as nvidia-pytriton's)",
    )
    p.add_argument(
        "--triton-checksum",
        action="store_true",
        help="name Triton's checksum repository agent (MD5 of the model files) in config.pbtxt; "
        "servers without that agent then refuse the model",
    )
    p.set_defaults(handler=cmd_build)
    p = commands.add_parser("bench", help="measure a package again; rewrite benchmark.csv/png")
    p.add_argument("folder", type=Path)
    p.add_argument("--max-batch", type=positive, default=None, help="default: the package's")
    p.add_argument("--seconds", type=positive_seconds, default=0.5, help="per measured point (0.5)")
    p.set_defaults(handler=cmd_bench)
    p = commands.add_parser("serve", help="serve a package's Triton repository until Ctrl-C")
    p.add_argument("folder", type=Path, help="a folder written by 'batchml package build'")
    p.add_argument("--host", default=None, help="address to listen on (default: 127.0.0.1)")
    for name in ("http", "grpc", "metrics"):
        p.add_argument(f"--{name}-port", type=port, default=None, help="default: a free port")
    p.add_argument(
        "--log",
        type=Path,
        default=None,
        help="server log (default: a new private folder in $TMPDIR, kept)",
    )
    p.add_argument("--tritonserver", type=Path, default=None, help="default: PATH, then pytriton")
    p.set_defaults(handler=cmd_serve)


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
        triton=TritonOptions(backend=args.triton_backend, checksum=args.triton_checksum),
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
    from batchml.errors import InvalidValue
    from batchml.package.bench import benchmark
    from batchml.package.checksums import read_metadata, write_manifest

    max_batch = args.max_batch or read_metadata(args.folder).get("max_batch")
    if not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1:
        raise InvalidValue(
            f"{args.folder}/metadata.json holds no largest batch (max_batch: {max_batch!r})",
            hint="pass --max-batch, or rebuild the package with 'batchml package build'",
        )
    with _steps(out) as step:
        step("measuring latency and throughput")
        points = benchmark(args.folder, max_batch=max_batch, seconds=args.seconds)
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


class _Stopped(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived while serving."""

    def __init__(self, signum: int) -> None:
        self.signum = signum


STOPS = ("SIGINT", "SIGTERM", "SIGHUP")  # SIGHUP: the terminal went away


def _raise_stopped(signum: int, _frame: object) -> None:
    """Stop serving; a second signal while the server stops is ignored, so it ends cleanly."""
    import signal

    for name in STOPS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise _Stopped(signum)


def cmd_serve(args: argparse.Namespace, out: Console) -> int:
    import signal

    from batchml.package.triton.server import (
        LOOPBACK,
        ServeError,
        ServeOptions,
        check_host,
        is_loopback,
        serve,
    )

    host = args.host or LOOPBACK
    check_host(host)
    if not is_loopback(host):
        Console(stderr=True, no_color=args.no_color or None, highlight=False).print(
            f"[yellow]warning:[/yellow] serving on {safe(host)}: anyone who can reach this "
            "machine there can run the model (Triton has no authentication of its own)"
        )
    options = ServeOptions(
        host=host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log=args.log,
        tritonserver=args.tritonserver,
    )
    previous = {s: signal.signal(getattr(signal, s), _raise_stopped) for s in STOPS}
    try:
        with out.status("starting tritonserver"):
            server = serve(args.folder, options)
        with server:
            _print_endpoints(out, server, args.folder)
            status = server.process.wait()
        raise ServeError(
            f"tritonserver exited by itself with status {status}",
            hint=f"its log says why: {server.log}",
        )
    except _Stopped as stopped:
        out.print("stopped")
        return 128 + stopped.signum
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def _print_endpoints(out: Console, server: TritonServer, folder: Path) -> None:
    ends = server.endpoints
    models = ", ".join(f"{m.name} ({m.backend} backend)" for m in server.models)
    source = safe(str(server.installation.source))
    out.print(f"serving {safe(models)} with tritonserver from {source}")
    out.print(f"  HTTP     {ends.http_url}")
    out.print(f"  gRPC     {ends.grpc_url}")
    out.print(f"  metrics  {ends.metrics_url}")
    out.print(f"  log      {safe(str(server.log))}")
    out.print(
        f"client: TritonSession({safe(repr(str(folder)))}, url={ends.grpc_url!r})"
        "  |  Ctrl-C stops the server"
    )
