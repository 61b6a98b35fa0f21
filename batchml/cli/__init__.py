"""The `batchml` command: a parser, one module per command group, and one error boundary.

The library never exits or prints errors itself; ``main`` is the only place
that turns a BatchmlError into an ``error:`` line, a ``hint:`` line and an exit
status (2 for bad input, 1 for failures), so scripts can tell them apart.
Output is coloured on a terminal and plain when piped (or with NO_COLOR).

A command group is a module here with ``register(groups)``, which adds its
sub-parser and sets ``handler(args, console) -> int`` on each command; heavy
imports (dask, uproot, torch) happen inside handlers, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

from batchml import __version__
from batchml.cli import data, demo, hpo, jobs, package, registry, site
from batchml.cli.terminal_text import safe
from batchml.errors import BatchmlError

log = logging.getLogger("batchml")
COMMAND_GROUPS = (site, jobs, hpo, demo, registry, package, data)


def build_parser() -> argparse.ArgumentParser:
    """The whole command-line grammar (public so docs and tests can inspect it)."""
    parser = argparse.ArgumentParser(
        prog="batchml",
        description="Hyper-parameter searches of PyTorch models on HTCondor and Slurm GPUs, "
        "from ROOT ntuples to a versioned, packaged model.",
        epilog="Start with 'batchml demo', then 'batchml site list'.",
    )
    parser.add_argument("--version", action="version", version=f"batchml {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--no-color", action="store_true", help="plain output, also when on a terminal"
    )
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status instead of exiting."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first '--' is a command for a job, passed on untouched
    # (argparse's own '--' handling does not reach through sub-commands).
    split = words.index("--") if "--" in words else len(words)
    args = parser.parse_args(words[:split])
    args.passthrough = words[split + 1 :]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Before distributed is imported, and inherited by worker processes: dask's INFO
    # chatter (and shutdown tracebacks it logs at INFO) would bury batchml's own output.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "info" if args.verbose else "warning")
    piped = not sys.stdout.isatty()
    out = Console(no_color=args.no_color or None, highlight=False, width=160 if piped else None)
    handler: Callable[[argparse.Namespace, Console], int] = args.handler
    try:
        return handler(args, out)
    except BatchmlError as exc:
        report_error(exc, verbose=args.verbose, no_color=args.no_color)
        return exc.exit_code
    except OSError as exc:  # a filesystem refusing what no check could foresee (a full disk)
        report_error(_os_error(exc), verbose=args.verbose, no_color=args.no_color)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _os_error(exc: OSError) -> BatchmlError:
    """An OSError as batchml's error: what failed, on which file, and where to look."""
    where = f" ({exc.filename})" if exc.filename else ""
    error = BatchmlError(
        f"{exc.strerror or exc}{where}",
        hint="check the path, its permissions and the free space; -v shows where it happened",
    )
    error.__cause__ = exc
    return error


def report_error(exc: BatchmlError, *, verbose: bool, no_color: bool) -> None:
    """The one way an error reaches the user: an error line, a hint line, no traceback."""
    if verbose:
        log.debug("traceback", exc_info=exc)
    err = Console(stderr=True, no_color=no_color or None, highlight=False, soft_wrap=True)
    err.print(f"[bold red]error:[/bold red] {safe(exc.message, keep_newlines=True)}")
    if exc.hint:
        err.print(f"[yellow]hint:[/yellow] {safe(exc.hint, keep_newlines=True)}")
