"""ONNX Runtime's compiled session, called beneath ``InferenceSession.run``.

``InferenceSession.run`` checks the feed names, graph capture and value
ownership on every call before it calls ``InferenceSession._sess.run``, the
C++ binding; for a small model at batch 1 those checks are a noticeable part
of the call, and more under many threads, where all Python is serialised by
the GIL (BENCHMARKS.md, Inference). BatchedSession's feeds always carry the
graph's own input names as numpy arrays, so the checks cannot fail, and it
calls the binding directly. Where the binding is not there (another
release) the public ``run`` serves; where it raises, the public ``run`` runs
the call again, so the caller gets its message (or its fallback to other
providers). tests/unit/test_compat_onnxruntime.py fails on a release where
``_sess.run`` moved or changed its arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

CHECKED_ON = ("1.16.3", "1.32.0")  # CMSSW's (the tests' old runtime) and the one batchml tests with
PRIVATE_NAME = "InferenceSession._sess.run"

Run = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def binding(session: Any) -> Callable[..., Any] | None:
    """``session._sess.run`` (output names, feeds, run options), or None where it is not there."""
    return getattr(getattr(session, "_sess", None), "run", None)


def fast_run(session: Any, output_names: list[str]) -> Run:
    """``feeds -> outputs`` through the binding, the public ``run`` where it is missing or fails."""
    compiled = binding(session)
    if compiled is None:
        return lambda feeds: list(session.run(output_names, feeds))

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return list(compiled(output_names, feeds, None))
        except Exception:  # the wrapper's message, or its fallback to other providers
            return list(session.run(output_names, feeds))

    return run
