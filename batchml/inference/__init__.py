"""Batched inference over a packaged model: many single-event callers, one model call.

A deployed package needs only onnxruntime and numpy, so this package imports
nothing else of batchml but its errors and batchml._compat.onnxruntime (nor
torch); onnxruntime is imported when a BatchedSession is made, so that
``TritonSession`` (the same interface, with the model on a Triton server)
needs only numpy and tritonclient.

One module per concern:

- spec.py: one input (shape, dtype, preprocess.json's scaling with CMSSW's
  inf/NaN semantics) and the errors of a model no session can feed;
- events.py: the caller's side every session shares (checks, feeds, results);
- session.py: ``BatchedSession``, wiring the schemes below to ONNX Runtime;
- runner.py: the small interface through which the schemes run a batch;
- threads.py: flat combining, for thread callers;
- coroutines.py: the asyncio pipeline, two batches in flight;
- inline.py: which coroutine batches run on the loop instead of the helper;
- chooser.py: batching or direct calls, measured while serving;
- triton.py: ``TritonSession``.
"""

from batchml.inference.events import EventSession
from batchml.inference.session import BatchedSession
from batchml.inference.spec import (
    Event,
    InputError,
    InputSpec,
    OnNaN,
    Result,
    Scaling,
    UnsupportedModel,
    scaling_of,
)
from batchml.inference.triton import TritonSession

__all__ = [
    "BatchedSession",
    "Event",
    "EventSession",
    "InputError",
    "InputSpec",
    "OnNaN",
    "Result",
    "Scaling",
    "TritonSession",
    "UnsupportedModel",
    "scaling_of",
]
