"""Running one trial's objective in its own process, forked from a warm parent.

Why a process per trial: a trial that segfaults, leaks GPU memory or calls
``sys.exit`` must not take the worker (and the other trials on it) down, and
each trial must set its own CUDA_VISIBLE_DEVICES before CUDA initialises.
Why forked from a warm parent: importing torch is most of a fresh trial
process's start-up; a forkserver that imported it once (without touching
CUDA) hands each trial a ready interpreter. The child talks to the real
``optuna.Trial`` in the worker through a pipe: ``ProxyTrial`` forwards
suggest/report/should_prune calls, so the sampler and pruner see the study as
usual and pruning works across processes.

Why a spare process: forking and booting a child is on the GPU slot's path
between two trials. So a blank child waits for each slot's next
trial (``warm_up`` forks the first ones) and takes its objective and devices
when it comes; the exiting child is reaped in the background.
Why spares are forked mid-trial and exiting children give way: trials that end
together start their successors together, and the CPU those need was going to
forking the next spares and tearing down the ended processes (each holding
torch's mappings). BENCHMARKS.md ("Hyper-parameter search") has what each
of these saves.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import multiprocessing.util
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import optuna

from batchml.hpo.gpu_memory import is_cuda_oom, trial_peak
from batchml.hpo.outcome import GPU_PEAK_ATTR, IO_ATTR, Outcome, TrialEnd

# The optuna.Trial methods a child may call through the pipe.
FORWARDED = (
    "suggest_float",
    "suggest_int",
    "suggest_categorical",
    "report",
    "should_prune",
    "set_user_attr",
)


@dataclass(frozen=True)
class TrialContext:
    """What an objective gets besides the trial: its devices and folders, and the site."""

    devices: tuple[str, ...]
    scratch_dir: Path
    checkpoint_dir: Path
    site: str
    attempt: int = 1


class ProxyTrial:
    """The trial object the objective sees in the child process.

    It also writes what the trial's RootDatasets read (``record_io``) before
    each report and once at the end: see io_profile.py for why then.
    """

    def __init__(
        self, conn: multiprocessing.connection.Connection, number: int, params: dict[str, Any]
    ):
        self._conn = conn
        self.number = number
        self._params = dict(params)
        self._began = time.perf_counter()
        self.stated_peak = 0  # GPU memory the objective says it used beside torch's allocator

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._conn.send(("call", method, args, kwargs))
        status, result = self._conn.recv()
        if status == "error":
            raise result
        if method.startswith("suggest_"):
            self._params[args[0] if args else kwargs["name"]] = result
        return result

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        return float(self._call("suggest_float", name, low, high, **kwargs))

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        return int(self._call("suggest_int", name, low, high, **kwargs))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._call("suggest_categorical", name, list(choices))

    def report(self, value: float, step: int) -> None:
        self.record_io()  # written before the report, whose write waits for it
        self._call("report", float(value), int(step))

    def record_io(self) -> None:
        """Write what this process's datasets read and waited so far (nothing if none read)."""
        if "batchml.data.loader_stats" not in sys.modules:
            return  # no dataset in this trial: skip importing the data module
        from batchml.data.loader_stats import process_totals
        from batchml.hpo.io_profile import IoProfile

        stats = process_totals()
        if stats.batches or stats.events_read:
            profile = IoProfile(time.perf_counter() - self._began, stats)
            self._call("set_user_attr", IO_ATTR, profile.to_attr())

    def should_prune(self) -> bool:
        return bool(self._call("should_prune"))

    def set_user_attr(self, key: str, value: Any) -> None:
        if key == GPU_PEAK_ATTR:  # the worker stores the peak, this one or torch's
            self.stated_peak = int(value)
            return
        self._call("set_user_attr", key, value)


def _child(conn: multiprocessing.connection.Connection) -> None:
    """A trial process: waits for its trial (a spare may wait long), runs it, says how it ended."""
    try:
        objective, payload = conn.recv()
    except EOFError:  # the worker went away before giving this spare a trial
        return
    number, params, context = cloudpickle.loads(payload)
    function = cloudpickle.loads(objective)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(context.devices)
    trial = ProxyTrial(conn, number, params)
    out_of_memory = False
    try:
        try:
            ended: tuple[Outcome, Any] = (Outcome.COMPLETE, function(trial, context))
        except optuna.TrialPruned:
            ended = (Outcome.PRUNED, None)
        except BaseException as exc:  # everything the objective raises is reported
            ended = (Outcome.RAISED, traceback.format_exc())
            out_of_memory = is_cuda_oom(exc)
        with contextlib.suppress(Exception):  # how the trial ended matters more
            trial.record_io()
        conn.send((*ended, max(trial_peak(), trial.stated_peak), out_of_memory))
    finally:
        conn.close()
        # Tearing down a process that imported torch takes milliseconds of CPU, when the
        # next trials start: this process's trial has reported, so it waits for them.
        with contextlib.suppress(OSError):
            os.nice(19)


Child = tuple[multiprocessing.process.BaseProcess, multiprocessing.connection.Connection]
EXIT_GRACE_S = 30.0  # a trial process that reported has this long to exit
REFILL_AFTER_S = 0.25  # a spare is forked this long after the trial that took the last began


class _Spares:
    """Blank trial processes, forked ahead, each used for one trial."""

    def __init__(self) -> None:
        self._ready: list[Child] = []
        self._lock = threading.Lock()
        self._closed = False
        # At exit multiprocessing joins every child (in a dask worker process, which
        # skips atexit, too); finalizers of priority >= 0 run before that join.
        multiprocessing.util.Finalize(None, self.close, exitpriority=10)

    def close(self) -> None:
        """Let the spares go: each sees its pipe close and exits (else exit would wait on them)."""
        with self._lock:
            ready, self._ready, self._closed = self._ready, [], True
        _let_go(ready)

    def take(self, mp: multiprocessing.context.ForkServerContext) -> Child:
        """A spare if one is ready, else a process forked now; a new spare follows it.

        The new spare is forked ``REFILL_AFTER_S`` later, once the trial has
        started: when trials end together, the next ones start together, and a
        fork (copying the page tables of a parent that imported torch) then
        competes for the CPU with every one of them.
        """
        with self._lock:
            child = self._ready.pop() if self._ready else None
        threading.Thread(
            target=self._refill, args=(mp,), name="batchml-spare-trial", daemon=True
        ).start()
        return child or _fork(mp)

    def _refill(self, mp: multiprocessing.context.ForkServerContext) -> None:
        time.sleep(REFILL_AFTER_S)
        if not self._closed:
            self.add([_fork(mp)])

    def add(self, children: list[Child]) -> None:
        """Spares for the next trials; let go at once once the process is exiting."""
        with self._lock:
            if not self._closed:
                self._ready.extend(children)
                return
        _let_go(children)

    @staticmethod
    def reap(ended: Child) -> None:
        """In the background: wait for a process that reported to exit, or kill it.

        One that does not exit (a thread of the objective that never ends) is
        killed after ``EXIT_GRACE_S``.
        """

        def work() -> None:
            ended[0].join(EXIT_GRACE_S)
            if ended[0].is_alive():
                ended[0].kill()
                ended[0].join()
            ended[1].close()

        threading.Thread(target=work, name="batchml-reap-trial", daemon=True).start()


def _let_go(spares: list[Child]) -> None:
    """Spares see their pipe close and exit."""
    for process, parent in spares:
        parent.close()
        process.join(5)


def _fork(mp: multiprocessing.context.ForkServerContext) -> Child:
    parent, child = mp.Pipe()
    process = mp.Process(target=_child, args=(child,), daemon=False)
    process.start()
    child.close()
    return process, parent


_spares = _Spares()
_preloaded = False


def _context(preload: Sequence[str]) -> multiprocessing.context.ForkServerContext:
    """The forkserver, told once per process which modules to import before forking."""
    global _preloaded
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, multiprocessing.context.ForkServerContext)
    if not _preloaded:
        # This module (and optuna with it) first: else each child would import them itself.
        available = [m for m in preload if importlib.util.find_spec(m) is not None]
        context.set_forkserver_preload([__name__, *available])
        main = getattr(sys.modules["__main__"], "__spec__", None)
        if main is not None:  # the forkserver reads it once, as it starts (_adopt_worker_main)
            os.environ[WORKER_MAIN_ENV] = main.name
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            os.environ.pop(WORKER_MAIN_ENV, None)
        _preloaded = True
    return context


WORKER_MAIN_ENV = "BATCHML_WORKER_MAIN"


def _adopt_worker_main() -> None:
    """In the forkserver, as it imports this module: take the worker's ``__main__`` name.

    Why: multiprocessing gives every child the name of its parent's main module,
    and a child whose own ``__main__`` has another name runs that module again
    (``runpy``). A worker's main is the ``dask worker`` command's module: each
    trial process ran it anew before its objective (BENCHMARKS.md, issue 19).
    A child forked from a process whose ``__main__`` has that name skips it
    (multiprocessing's own check for forked children); no trial needs the
    worker's main (the objective comes cloudpickled, by value if it was defined
    in a script's main). Nothing else takes the name: it is read only where the
    main has none (the forkserver's ``-c`` command) and dropped from the
    environment once read.
    """
    name = os.environ.pop(WORKER_MAIN_ENV, None)
    main = sys.modules.get("__main__")
    if name and main is not None and getattr(main, "__spec__", None) is None:
        main.__spec__ = importlib.machinery.ModuleSpec(name, None)


_adopt_worker_main()


def warm_up(spares: int, preload: Sequence[str] = ("torch",)) -> None:
    """Fork ``spares`` trial processes now, which starts the forkserver (it imports ``preload``).

    Without spares the first round of trials forks its processes all at once,
    each on its trial's path, and the last of them starts well after the first.
    """
    context = _context(preload)
    _spares.add([_fork(context) for _ in range(spares)])


def run_isolated(
    objective: bytes,
    trial: optuna.Trial,
    context: TrialContext,
    preload: Sequence[str] = ("torch",),
) -> TrialEnd:
    """Run the cloudpickled ``objective`` in a fresh process; serve its trial calls till it ends."""
    mp = _context(preload)
    process, parent = _spares.take(mp)
    reported = False
    try:
        parent.send((objective, cloudpickle.dumps((trial.number, trial.params, context))))
        ended, reported = _follow(process, parent, trial)
    finally:
        if reported:  # its exit is reaped in the background: the slot is free now
            _spares.reap((process, parent))
        else:
            if process.is_alive():
                process.kill()
                process.join()
            parent.close()
    return ended


def _follow(
    process: multiprocessing.process.BaseProcess,
    parent: multiprocessing.connection.Connection,
    trial: optuna.Trial,
) -> tuple[TrialEnd, bool]:
    """Serve the trial process's calls until it says how it ended (True), or dies (False)."""
    while True:
        try:
            message = parent.recv()
        except EOFError:
            process.join()
            return _died(process.exitcode), False
        kind = message[0]
        if kind == "call":
            _serve(parent, trial, *message[1:])
            continue
        _, payload, peak, out_of_memory = message
        value, why = (payload, "") if kind is Outcome.COMPLETE else (None, payload or "")
        return TrialEnd(kind, value, why, gpu_peak=peak, out_of_memory=out_of_memory), True


# Signals a scheduler (scancel, condor_rm, walltime, preemption) or an operator sends:
# a trial killed by one of these did nothing wrong and is retried; SIGSEGV and the
# like are the objective's own crash and are not.
EXTERNAL_SIGNALS = {signal.SIGTERM, signal.SIGKILL, signal.SIGHUP, signal.SIGINT}


def _died(exitcode: int | None) -> TrialEnd:
    """How a trial process that never reported ended: killed from outside, or crashed."""
    if exitcode is not None and exitcode < 0 and signal.Signals(-exitcode) in EXTERNAL_SIGNALS:
        name = signal.Signals(-exitcode).name
        return TrialEnd(Outcome.PREEMPTED, message=f"the trial process was killed by {name}")
    return TrialEnd(Outcome.CRASHED, message=f"the trial process died with exit code {exitcode}")


def _serve(
    conn: multiprocessing.connection.Connection,
    trial: optuna.Trial,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    if method not in FORWARDED:
        conn.send(("error", AttributeError(f"trial.{method} is not available in batchml trials")))
        return
    try:
        conn.send(("ok", getattr(trial, method)(*args, **kwargs)))
    except Exception as exc:  # handed back to the objective, which decides
        conn.send(("error", exc))
