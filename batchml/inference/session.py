"""``BatchedSession``: many single-event callers, one ONNX Runtime call, in this process.

Threads either call ONNX Runtime directly (it releases the GIL, so two cores
run two calls at once) or are batched by flat combining (threads.py);
coroutines either call it directly on the loop or go through the asyncio
pipeline (coroutines.py). Which is faster depends on the model and the load,
so a Chooser (chooser.py) for the threads and one per event loop measure both
ways while serving and keep the faster. Each event is checked in its caller
(shape; NaN, where ``on_nan="raise"``) and a bad one raises there.

onnxruntime is imported when a session is made, so that importing
``batchml.inference`` for TritonSession needs only numpy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchml._compat.onnxruntime import fast_run
from batchml.inference.chooser import Chooser
from batchml.inference.coroutines import Pipeline
from batchml.inference.events import EventSession, ModelIO
from batchml.inference.runner import BatchRunner
from batchml.inference.spec import (
    Event,
    InputSpec,
    OnNaN,
    Result,
    check_on_nan,
    event_shape,
    input_spec,
    onnx_dtype,
    read_preprocess,
)
from batchml.inference.threads import FlatCombining

if TYPE_CHECKING:
    import onnxruntime as ort

MODEL = "model.onnx"


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
    (InputError for that event alone). A model whose inputs a session cannot
    feed (an axis besides the batch without a fixed size, an element type
    numpy does not hold) raises UnsupportedModel here.
    """

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
        if not (folder / MODEL).is_file():
            raise FileNotFoundError(
                f"{folder}: no {MODEL} here; pass a folder written by "
                "'batchml package build MODEL -o DIR'"
            )
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        self.session = ort.InferenceSession(
            str(folder / MODEL),
            sess_options=options,
            providers=list(providers or ["CPUExecutionProvider"]),
        )
        inputs = onnx_input_specs(self.session, read_preprocess(folder), str(folder / MODEL))
        output_names = [o.name for o in self.session.get_outputs()]
        super().__init__(
            ModelIO(inputs, output_names, on_nan), max_batch, fast_run(self.session, output_names)
        )
        self.batching = batching
        self.max_delay_s = max_delay_ms / 1000
        runner = BatchRunner(self.io, self._run_model, max_batch)
        self._threads = FlatCombining(runner, self.max_delay_s)
        self._thread_way = Chooser(batching)
        self._coroutines = Pipeline(runner, batching)

    def predict(self, event: Event) -> Result:
        """The model's output for one event, batched with whatever other threads submit."""
        if not self._thread_way.batching():
            return self._one(event)
        return self._threads.serve(self.io.row(event))

    async def apredict(self, event: Event) -> Result:
        """Like ``predict``, for coroutines: batches the loop's callers.

        Where calling directly measured faster (a lone caller, a light model),
        the event is run at once on the loop, holding it for one batch-1 call,
        as calling ONNX Runtime in the coroutine would.
        """
        queue = self._coroutines.queue(asyncio.get_running_loop())
        if not queue.way.batching():
            return self._one(event)
        return await queue.submit(self.io.row(event))

    def close(self) -> None:
        """Stop the helper thread of the asyncio path (threads need no cleanup)."""
        self._coroutines.close()

    def __enter__(self) -> BatchedSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def onnx_input_specs(
    session: ort.InferenceSession, preprocess: Mapping[str, Any], model: str
) -> list[InputSpec]:
    """Per-event shapes and dtypes from the graph (batch axis dropped), constants from
    preprocess.json; UnsupportedModel for an input no session can feed."""
    return [
        input_spec(
            node.name,
            event_shape(node.name, node.shape, model),
            onnx_dtype(node.name, node.type, model),
            preprocess,
        )
        for node in session.get_inputs()
    ]
