"""Batched inference over a packaged model: many single-event callers, one ONNX Runtime call.

A deployed package needs only onnxruntime and numpy, so this module imports
nothing else from batchml (nor torch); onnxruntime is imported when a
BatchedSession is made, so that ``TritonSession`` (the same interface, with
the model on a Triton server; batchml/triton_session.py) needs only numpy and
tritonclient. The cost that limits a Python batcher
is per-call synchronisation, not the model: a queue plus a worker thread plus
an ``Event`` per call tops out near 20k calls/s. So:

- Threads either call ONNX Runtime directly (it releases the GIL, so two
  cores run two calls at once) or use *flat combining*: a caller that finds
  no batch running becomes the leader, gathers what is pending and runs it on
  its own thread; the others block on one pre-acquired lock each, released
  once with their row (or with the leadership). Which of the two is faster
  depends on the model and on how busy the machine is (on a quiet 2-core
  machine direct calls won even for a 20-512x3-1 MLP; under load batching
  won), so a ``_Chooser`` measures both while serving and keeps the faster.
- Coroutines append a loop future. Up to two batches are in flight: one
  running on the helper thread, one queued behind it, so the helper goes from
  one ONNX Runtime call straight to the next without waiting for the loop.
  A batch is sent once half of ``max_batch`` has gathered (or at the end of
  the loop iteration that brought the first request), so while the helper
  computes one half, the loop wakes the other half's callers and gathers
  their next requests. Only the ONNX Runtime call runs on the helper
  (stacking, scaling and splitting stay on the loop). With one batch in
  flight the loop and the helper took turns, and the larger MLP reached 0.6
  of the batch limit; pipelined halves reach 0.9.

A thread batch runs when it holds ``max_batch`` rows, when one scheduling
round brought no new request, or when ``max_delay_ms`` has passed since it
started gathering. A lone caller is therefore served at once, at batch 1.

Each event is checked in its caller (shape; NaN, where ``on_nan="raise"``) and
a bad one raises there; rows are preprocessed together with ``preprocess.json``
as CMSSW's reader does (``RecoBTag/FeatureTools/src/deep_helpers.cc``):
infinities, NaN and values beyond 1e32 become ``replace_inf_value``, then
``(x - median) * norm_factor`` is clipped to the bounds, in the input's dtype.
"""

from __future__ import annotations

import _thread
import asyncio
import json
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import onnxruntime as ort

Event = np.ndarray | Sequence[float] | Mapping[str, Any]
Row = tuple[np.ndarray, ...]
Result = np.ndarray | dict[str, np.ndarray]
Outcome = tuple[Any, BaseException | None]  # (result, None) or (None, the caller's error)
OnNaN = Literal["replace", "raise"]
HUGE = np.float64(1e32)  # CMSSW's catch_infs replaces beyond this (compared in double precision)


class InputError(ValueError):
    """One event cannot be fed to the model; raised in that event's caller only."""


def check_on_nan(on_nan: str) -> None:
    """ValueError unless ``on_nan`` is one of the two ways a session treats NaN."""
    if on_nan not in ("replace", "raise"):
        raise ValueError(f"on_nan={on_nan!r} must be 'replace' or 'raise'")


def _nan_error() -> InputError:
    return InputError("the event holds NaN, which has no normalised value: fix or drop it")


@dataclass(frozen=True)
class Scaling:
    """Per-variable constants of one input from preprocess.json, arrays over the last axis.

    The constants are in the input's dtype, so a float32 input is computed in
    float32 as CMSSW computes it, with the same rounding.
    """

    median: np.ndarray
    norm_factor: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    replace_inf: np.ndarray

    def apply(self, batch: np.ndarray) -> np.ndarray:
        """CMSSW's ``catch_infs``, then centre, scale and clip.

        One comparison catches all three: NaN compares false, infinities exceed the limit.
        """
        values = np.where(np.abs(batch) <= HUGE, batch, self.replace_inf)
        return np.clip((values - self.median) * self.norm_factor, self.lower, self.upper)


@dataclass(frozen=True)
class InputSpec:
    """One model input: its per-event shape and dtype, and its scaling (None: fed as is)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scaling: Scaling | None = None

    def check(self, value: Any) -> np.ndarray:
        array = np.asarray(value, dtype=self.dtype)
        if array.shape != self.shape:
            raise InputError(
                f"input {self.name!r} has shape {array.shape}; "
                f"the model takes {self.shape} per event"
            )
        return array

    def prepare(self, batch: np.ndarray, on_nan: OnNaN) -> tuple[np.ndarray, np.ndarray]:
        """(preprocessed batch, rows refused for holding NaN).

        Where preprocess.json normalises the input, NaN becomes its variable's
        ``replace_inf_value`` as in CMSSW, or with ``on_nan="raise"`` is refused;
        an input fed as is passes NaN on, as ONNX Runtime would.
        """
        if self.scaling is None or on_nan == "replace":
            bad = np.zeros(len(batch), dtype=bool)
        else:
            bad = np.isnan(batch).reshape(len(batch), -1).any(axis=1)
        if self.scaling is None:
            return batch, bad
        return self.scaling.apply(batch).astype(self.dtype, copy=False), bad


class _Slot:
    """One thread caller's request: its row, a lock released once, and the outcome."""

    __slots__ = ("error", "lead", "lock", "result", "row")

    def __init__(self, row: Row) -> None:
        self.row = row
        self.lock = _thread.allocate_lock()
        self.lock.acquire()
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None


class EventSession:
    """What every session does around its model: the caller's side of inference.

    Checks each event, preprocesses rows with preprocess.json, cuts chunks in
    slices of ``max_batch`` and gives a result per event (the output row, or
    {output name: row}). BatchedSession runs the model in this process,
    batchml.triton_session.TritonSession on a Triton server; both inherit
    this, so switching between them changes where the model runs, never what
    it is fed or what comes back. A subclass sets ``inputs``, ``output_names``
    and ``max_batch`` and runs the model in ``_ort``.
    """

    inputs: list[InputSpec]
    output_names: list[str]
    max_batch: int
    on_nan: OnNaN

    def _ort(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The model's outputs for a batch of preprocessed feeds."""
        raise NotImplementedError

    def predict_many(self, events: np.ndarray | Mapping[str, np.ndarray]) -> Result:
        """Outputs for a whole chunk (first axis = events), in slices of ``max_batch``.

        With ``on_nan="raise"``, raises InputError naming the rows that hold NaN;
        nothing is computed then.
        """
        arrays = events if isinstance(events, Mapping) else {self.inputs[0].name: events}
        feeds, bad = self._chunk_feeds(arrays)
        if bad.any():
            raise InputError(f"rows {np.flatnonzero(bad).tolist()[:20]} hold NaN")
        n = len(next(iter(feeds.values())))
        parts = [
            self._ort({k: v[i : i + self.max_batch] for k, v in feeds.items()})
            for i in range(0, n, self.max_batch)
        ]
        outputs = [np.concatenate([p[j] for p in parts]) for j in range(len(self.output_names))]
        return (
            outputs[0] if len(outputs) == 1 else dict(zip(self.output_names, outputs, strict=True))
        )

    def _row(self, event: Event) -> Row:
        if isinstance(event, Mapping):
            missing = [s.name for s in self.inputs if s.name not in event]
            if missing:
                raise InputError(f"event lacks inputs {missing}")
            return tuple(s.check(event[s.name]) for s in self.inputs)
        if len(self.inputs) != 1:
            raise InputError(f"the model has inputs {[s.name for s in self.inputs]}: pass a dict")
        return (self.inputs[0].check(event),)

    def _event_feeds(self, event: Event) -> dict[str, np.ndarray]:
        """One event, checked and preprocessed, as feeds of batch 1."""
        feeds = {}
        for spec, value in zip(self.inputs, self._row(event), strict=True):
            batch, bad = spec.prepare(value[None], self.on_nan)
            if bad[0]:
                raise _nan_error()
            feeds[spec.name] = batch
        return feeds

    def _pick(self, outputs: list[np.ndarray], j: int) -> Result:
        """Row ``j`` of the outputs: an array for a one-output model, else {name: array}."""
        if len(outputs) == 1:
            return outputs[0][j]
        return {n: o[j] for n, o in zip(self.output_names, outputs, strict=True)}

    def _feeds(self, stacked: list[np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        bad = np.zeros(len(stacked[0]), dtype=bool)
        feeds = {}
        for spec, batch in zip(self.inputs, stacked, strict=True):
            feeds[spec.name], rows_bad = spec.prepare(batch, self.on_nan)
            bad |= rows_bad
        return feeds, bad

    def _chunk_feeds(self, arrays: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        stacked = []
        for spec in self.inputs:
            if spec.name not in arrays:
                raise InputError(f"chunk lacks input {spec.name!r}")
            array = np.asarray(arrays[spec.name], dtype=spec.dtype)
            if array.shape[1:] != spec.shape:
                raise InputError(
                    f"input {spec.name!r} has shape {array.shape}, expected (n, *{spec.shape})"
                )
            stacked.append(array)
        return self._feeds(stacked)


class BatchedSession(EventSession):
    """An ONNX Runtime session over ``package_dir`` that batches concurrent single events.

    Thread-safe: ``predict`` from any number of threads, ``apredict`` from any
    number of coroutines (of one or several loops), ``predict_many`` for callers
    that already hold a chunk. A result is the output row (one output) or
    {output name: row}. ``batching`` pins the callers' way (True: batch,
    False: call directly); None measures both ways while serving, for thread
    callers and for each event loop's coroutines, and keeps the faster.
    ``on_nan`` says what a NaN in a normalised input becomes: ``"replace"``
    (its ``replace_inf_value``, as CMSSW's reader does) or ``"raise"``
    (InputError for that event alone).
    """

    INLINE_S = 1e-4  # a coroutine batch computed faster than this runs on the loop

    def __init__(
        self,
        package_dir: str | Path,
        max_batch: int = 256,
        max_delay_ms: float = 2.0,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        batching: bool | None = None,
        on_nan: OnNaN = "replace",
    ) -> None:
        if max_batch < 1 or max_delay_ms < 0:
            raise ValueError(f"max_batch={max_batch} must be >= 1 and max_delay_ms >= 0")
        check_on_nan(on_nan)
        folder = Path(package_dir)
        if not (folder / "model.onnx").is_file():
            raise FileNotFoundError(
                f"{folder}: no model.onnx here; pass a folder written by "
                "'batchml package build MODEL -o DIR'"
            )
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"),
            sess_options=options,
            providers=list(providers or ["CPUExecutionProvider"]),
        )
        self.inputs = _input_specs(self.session, _read_preprocess(folder))
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._binding_run = _binding_run(self.session)
        self.max_batch = max_batch
        self.on_nan = on_nan
        self.max_delay_s = max_delay_ms / 1000
        self._guard = _thread.allocate_lock()
        self._pending: deque[_Slot] = deque()
        self._leading = False
        self._async: dict[asyncio.AbstractEventLoop, _LoopQueue] = {}
        self._executor: ThreadPoolExecutor | None = None
        self.batching = batching
        self.thread_way = _Chooser(batching)
        self._only = self.inputs[0] if len(self.inputs) == 1 else None
        self.row_s = math.inf  # unknown until a batch has run: the first goes to the helper

    # -- one event, from threads ----------------------------------------------------------

    def predict(self, event: Event) -> Result:
        """The model's output for one event, batched with whatever other threads submit."""
        if not self.thread_way.batching():
            return self._run_one(event)
        slot = _Slot(self._row(event))
        with self._guard:
            self._pending.append(slot)
            lead = not self._leading
            self._leading = True
        if not lead:
            slot.lock.acquire()  # released with the result, or with the leadership
            lead = slot.lead
        if lead:
            self._lead(slot)
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _lead(self, own: _Slot) -> None:
        """Run batches until ``own`` is served, then pass the leadership on or drop it."""
        while True:
            self._gather(lambda: len(self._pending))
            with self._guard:
                batch = [
                    self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))
                ]
            for slot, (result, error) in zip(
                batch, self._run_rows([s.row for s in batch]), strict=True
            ):
                slot.result, slot.error = result, error
                if slot is not own:
                    slot.lock.release()
            if own in batch:
                break
        with self._guard:
            if self._pending:
                heir = self._pending[0]
                heir.lead = True
                heir.lock.release()
            else:
                self._leading = False

    def _gather(self, size: Any) -> None:
        """Yield while requests keep arriving, up to ``max_batch`` rows or ``max_delay``."""
        deadline = time.perf_counter() + self.max_delay_s
        seen = size()
        while seen < self.max_batch and time.perf_counter() < deadline:
            time.sleep(0)  # let the threads that are ready submit
            now = size()
            if now == seen:
                return
            seen = now

    # -- one event, from coroutines --------------------------------------------------------

    async def apredict(self, event: Event) -> Result:
        """Like ``predict``, for coroutines: batches the loop's callers.

        Where calling directly measured faster (a lone caller, a light model),
        the event is run at once on the loop, holding it for one batch-1 call,
        as calling ONNX Runtime in the coroutine would.
        """
        loop = asyncio.get_running_loop()
        queue = self._async.get(loop) or self._async.setdefault(loop, _LoopQueue(self, loop))
        if not queue.way.batching():
            return self._run_one(event)
        row = self._row(event)
        future: asyncio.Future[Result] = loop.create_future()
        queue.submit(row, future)
        return await future

    def _helper(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="batchml-inference")
            return self._executor

    # -- shared ----------------------------------------------------------------------------

    def _run_rows(self, rows: list[Row]) -> list[Outcome]:
        """One ONNX Runtime call for ``rows``; a row holding NaN gets an error, the rest results."""
        try:
            feeds, bad = self._prepare(rows)
            outputs = self._compute(feeds)
        except Exception as exc:  # the whole batch failed: every caller learns why
            return [(None, exc)] * len(rows)
        return self._results(outputs, bad)

    def _prepare(self, rows: list[Row]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The stacked, preprocessed feeds of the rows free of NaN, and which rows hold NaN."""
        stacked = [np.stack([r[i] for r in rows]) for i in range(len(self.inputs))]
        feeds, bad = self._feeds(stacked)
        if bad.any():
            feeds = {k: v[~bad] for k, v in feeds.items()}
        return feeds, bad

    def _compute(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The one call that releases the GIL; all Python work stays with the callers.

        Times itself: ``row_s`` (seconds per row, recent batches weighted most)
        tells the coroutine path which batches are quicker to run on the loop.
        """
        rows = len(next(iter(feeds.values())))
        if not rows:
            return []
        start = time.perf_counter()
        outputs = self._ort(feeds)
        took = (time.perf_counter() - start) / rows
        self.row_s = took if math.isinf(self.row_s) else 0.8 * self.row_s + 0.2 * took
        return outputs

    def _quick(self, rows: int) -> bool:
        """Whether ``rows`` take less time to compute than a hop to the helper thread and back."""
        return self.row_s * rows < self.INLINE_S

    def _results(self, outputs: list[np.ndarray], bad: np.ndarray) -> list[Outcome]:
        picked = iter(range(len(bad)))
        return [
            (None, _nan_error()) if is_bad else (self._pick(outputs, next(picked)), None)
            for is_bad in bad.tolist()
        ]

    def _run_one(self, event: Event) -> Result:
        """One event straight through ONNX Runtime at batch 1, in the caller's thread.

        An array of the model's one input skips the general checks: this path
        competes with callers who run ONNX Runtime themselves, so its cost over
        theirs must stay near nothing (a NaN test by one dot product, where refused).
        """
        raise_nan = self.on_nan == "raise"
        spec = self._only
        if (
            spec is not None
            and type(event) is np.ndarray
            and event.dtype == spec.dtype
            and event.shape == spec.shape
        ):
            batch = event[None]
            if spec.scaling is not None:
                if raise_nan and math.isnan(np.vdot(event, event)):
                    raise _nan_error()
                batch = spec.scaling.apply(batch).astype(spec.dtype, copy=False)
            return self._pick(self._ort({spec.name: batch}), 0)
        return self._pick(self._ort(self._event_feeds(event)), 0)

    def _ort(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """ONNX Runtime's run; its Python wrapper only when the binding's own call fails."""
        try:
            return list(self._binding_run(self.output_names, feeds, None))
        except Exception:  # the wrapper's message, or its fallback to other providers
            return list(self.session.run(self.output_names, feeds))

    def close(self) -> None:
        """Stop the helper thread of the asyncio path (threads need no cleanup)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> BatchedSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Chooser:
    """Whether callers batch or call directly, re-measured while they are served.

    After each hold the callers are served ``WINDOW_S`` each way and the way
    that completed more calls per second is kept; batching must win by
    ``MARGIN`` (it adds latency). A window with fewer than ``BUSY`` calls means
    low load, where batching cannot pay: calls go direct. A hold starts at
    ``FIRST_HOLD_S`` and doubles up to ``HOLD_S`` while the same way keeps
    winning, so a choice made on a noisy window (callers still starting, the
    machine busy for a moment) is checked again soon. Counts are read without
    a lock (a lost increment only blurs a rate); one thread at a time closes a
    window.
    """

    WINDOW_S = 0.05
    FIRST_HOLD_S = 0.5
    HOLD_S = 2.0
    MARGIN = 1.1
    BUSY = 32

    def __init__(self, pinned: bool | None) -> None:
        self.batched = bool(pinned)
        self.calls = 0
        self.window_end = math.inf if pinned is not None else 0.0
        self.window_start = 0.0
        self.phase = "hold"
        self.direct_rate = 0.0
        self.hold_s = self.FIRST_HOLD_S
        self.kept: bool | None = None
        self._closing = _thread.allocate_lock()

    def batching(self) -> bool:
        """Count one call and say which way it goes.

        The clock is read every 32 calls only: a read costs a tenth of a small call.
        """
        self.calls += 1
        if not self.calls & 31 and time.perf_counter() >= self.window_end:
            self.tick()
        return self.batched

    def tick(self, now: float | None = None) -> None:
        """Close the window that has ended: start the next trial or settle on a way."""
        if not self._closing.acquire(blocking=False):
            return
        try:
            now = time.perf_counter() if now is None else now
            rate = self.calls / max(now - self.window_start, 1e-9)
            if self.phase == "hold":
                self._open("direct", False, now)
            elif self.phase == "direct":
                self.direct_rate = rate
                if rate * self.WINDOW_S < self.BUSY:
                    self._keep(False, now)
                else:
                    self._open("batched", True, now)
            else:
                self._keep(rate > self.MARGIN * self.direct_rate, now)
        finally:
            self._closing.release()

    def _keep(self, batched: bool, now: float) -> None:
        if batched == self.kept:
            self.hold_s = min(2 * self.hold_s, self.HOLD_S)
        else:
            self.hold_s = self.FIRST_HOLD_S
        self.kept = batched
        self._open("hold", batched, now, self.hold_s)

    def _open(self, phase: str, batched: bool, now: float, length: float = WINDOW_S) -> None:
        self.phase, self.batched = phase, batched
        self.calls = 0
        self.window_start, self.window_end = now, now + length


class _LoopQueue:
    """The pending coroutine requests of one event loop; touched only from that loop."""

    IN_FLIGHT = 2  # one batch running on the helper, one queued behind it

    def __init__(self, session: BatchedSession, loop: asyncio.AbstractEventLoop) -> None:
        self.session = session
        self.loop = loop
        self.rows: list[Row] = []
        self.futures: list[asyncio.Future[Result]] = []
        self.scheduled = False
        self.in_flight = 0
        self.half = max(1, session.max_batch // 2)
        self.way = _Chooser(session.batching)

    def submit(self, row: Row, future: asyncio.Future[Result]) -> None:
        self.rows.append(row)
        self.futures.append(future)
        if self.in_flight < self.IN_FLIGHT and len(self.rows) >= self.half:
            self.dispatch()
        elif not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """End of the loop iteration that brought the first request: send what came."""
        self.scheduled = False
        if self.rows and self.in_flight < self.IN_FLIGHT:
            self.dispatch()

    def dispatch(self) -> None:
        """Prepare up to ``max_batch`` pending rows here and hand the model call to the helper.

        Only ONNX Runtime's call runs on the helper: any Python there would fight
        the loop for the GIL. A batch whose call is quicker than the hop to the
        helper and back (about 0.1 ms; a lone caller, a light model) runs here:
        handing one event of a small MLP to the helper cost 17x its call.
        """
        count = min(len(self.rows), self.session.max_batch)
        rows, self.rows = self.rows[:count], self.rows[count:]
        futures, self.futures = self.futures[:count], self.futures[count:]
        if self.session._quick(count):
            _settle(futures, self.session._run_rows(rows))
            self._flush_soon()
            return
        try:
            feeds, bad = self.session._prepare(rows)
        except Exception as exc:
            _settle(futures, [(None, exc)] * count)
            self._flush_soon()
            return
        self.in_flight += 1
        done = self.loop.run_in_executor(self.session._helper(), self.session._compute, feeds)
        done.add_done_callback(lambda outcome: self.finish(futures, bad, outcome))

    def _flush_soon(self) -> None:
        if self.rows and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def finish(
        self, futures: list[asyncio.Future[Result]], bad: np.ndarray, outcome: asyncio.Future[Any]
    ) -> None:
        """Queue the next batch first (the helper stays busy), then wake this one's callers."""
        self.in_flight -= 1
        if self.rows:
            self.dispatch()
        error = outcome.exception()
        _settle(
            futures,
            [(None, error)] * len(futures)
            if error is not None
            else self.session._results(outcome.result(), bad),
        )


def _settle(futures: list[asyncio.Future[Result]], outcomes: list[Outcome]) -> None:
    for future, (result, error) in zip(futures, outcomes, strict=True):
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _binding_run(session: ort.InferenceSession) -> Any:
    """The run of ONNX Runtime's compiled session, beneath ``InferenceSession.run``.

    The wrapper checks the feed names, graph capture and value ownership on
    every call: about 1 us, a fifth of a small MLP's call at batch 1, and
    more under 64 threads, where all Python is serialised by the GIL. Feeds
    built here always carry the graph's own input names as numpy arrays, so
    those checks cannot fail; where the binding is not reachable (another
    onnxruntime), the wrapper is used.
    """
    binding = getattr(getattr(session, "_sess", None), "run", None)
    if binding is None:
        return lambda names, feeds, _options: session.run(names, feeds)
    return binding


def _read_preprocess(folder: Path) -> dict[str, Any]:
    path = folder / "preprocess.json"
    return dict(json.loads(path.read_text())) if path.is_file() else {}


ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def _input_specs(session: ort.InferenceSession, preprocess: Mapping[str, Any]) -> list[InputSpec]:
    """Per-event shapes from the graph (batch axis dropped), constants from preprocess.json."""
    specs = []
    for node in session.get_inputs():
        shape = tuple(int(d) for d in node.shape[1:])
        dtype = np.dtype(ORT_DTYPES[node.type])
        group = preprocess.get(node.name)
        if not group:
            specs.append(InputSpec(node.name, shape, dtype))
            continue
        specs.append(InputSpec(node.name, shape, dtype, scaling_of(group, dtype)))
    return specs


def scaling_of(group: Mapping[str, Any], dtype: np.dtype[Any] | type) -> Scaling:
    """The constants of one input group of preprocess.json, in ``var_names`` order.

    In ``dtype`` where it is a float type (CMSSW holds them as float32); float64 otherwise.
    """
    infos = [group["var_infos"][v] for v in group["var_names"]]
    kind = np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)

    def column(key: str) -> np.ndarray:
        return np.array([float(i[key]) for i in infos], dtype=kind)

    return Scaling(
        median=column("median"),
        norm_factor=column("norm_factor"),
        lower=column("lower_bound"),
        upper=column("upper_bound"),
        replace_inf=column("replace_inf_value"),
    )


def __getattr__(name: str) -> Any:
    """``TritonSession`` (batchml/triton_session.py) is found here too, beside BatchedSession."""
    if name == "TritonSession":
        from batchml.triton_session import TritonSession

        return TritonSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
