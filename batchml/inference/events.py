"""The caller's side of inference, the same wherever the model runs.

``ModelIO`` turns events into feeds (checked, preprocessed with
preprocess.json) and outputs back into one result per event (the output row,
or {output name: row}). ``EventSession`` is what a user holds: BatchedSession
runs the model in this process, TritonSession on a Triton server; both are
an ``EventSession`` built from a ``ModelIO`` and a model call, so switching
between them changes where the model runs, never what it is fed or what comes
back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchml.inference.spec import (
    Event,
    Feeds,
    InputError,
    InputSpec,
    OnNaN,
    Result,
    Row,
    nan_error,
)

ModelCall = Callable[[Feeds], list[np.ndarray]]  # preprocessed feeds -> the model's outputs


@dataclass(frozen=True)
class ModelIO:
    """A model's inputs and outputs as callers see them: events in, one result per event out."""

    inputs: list[InputSpec]
    output_names: list[str]
    on_nan: OnNaN
    only: InputSpec | None = field(init=False)  # the one input of a one-input model

    def __post_init__(self) -> None:
        object.__setattr__(self, "only", self.inputs[0] if len(self.inputs) == 1 else None)

    def row(self, event: Event) -> Row:
        """One event checked against the inputs' shapes, one array per input."""
        if isinstance(event, Mapping):
            missing = [s.name for s in self.inputs if s.name not in event]
            if missing:
                raise InputError(f"event lacks inputs {missing}")
            return tuple(s.check(event[s.name]) for s in self.inputs)
        if self.only is None:
            raise InputError(f"the model has inputs {[s.name for s in self.inputs]}: pass a dict")
        return (self.only.check(event),)

    def event_feeds(self, event: Event) -> Feeds:
        """One event, checked and preprocessed, as feeds of batch 1.

        An array of the model's one input skips the general checks: a caller
        served directly competes with callers who run ONNX Runtime themselves,
        so its cost over theirs must stay near nothing (a NaN test by one dot
        product, where refused).
        """
        spec = self.only
        if (
            spec is not None
            and type(event) is np.ndarray
            and event.dtype == spec.dtype
            and event.shape == spec.shape
        ):
            batch = event[None]
            if spec.scaling is not None:
                if self.on_nan == "raise" and math.isnan(np.vdot(event, event)):
                    raise nan_error()
                batch = spec.scaling.apply(batch).astype(spec.dtype, copy=False)
            return {spec.name: batch}
        feeds = {}
        for spec, value in zip(self.inputs, self.row(event), strict=True):
            batch, bad = spec.prepare(value[None], self.on_nan)
            if bad[0]:
                raise nan_error()
            feeds[spec.name] = batch
        return feeds

    def stacked_feeds(self, stacked: list[np.ndarray]) -> tuple[Feeds, np.ndarray]:
        """Preprocessed feeds of whole batches (one array per input), and the rows holding NaN."""
        bad = np.zeros(len(stacked[0]), dtype=bool)
        feeds = {}
        for spec, batch in zip(self.inputs, stacked, strict=True):
            feeds[spec.name], rows_bad = spec.prepare(batch, self.on_nan)
            bad |= rows_bad
        return feeds, bad

    def chunk_feeds(self, arrays: Mapping[str, Any]) -> tuple[Feeds, np.ndarray]:
        """A caller's chunk (first axis = events) checked and preprocessed, and its NaN rows."""
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
        return self.stacked_feeds(stacked)

    def pick(self, outputs: list[np.ndarray], j: int) -> Result:
        """Row ``j`` of the outputs: an array for a one-output model, else {name: array}."""
        if len(outputs) == 1:
            return outputs[0][j]
        return {n: o[j] for n, o in zip(self.output_names, outputs, strict=True)}


class EventSession:
    """What every session does around its model: the caller's side of inference.

    ``run_model`` takes preprocessed feeds (at most ``max_batch`` rows) and
    returns the model's outputs; ``predict_many`` cuts a chunk into slices of
    ``max_batch`` for it, and a subclass serves single events (``predict``,
    ``apredict``) its own way.
    """

    def __init__(self, io: ModelIO, max_batch: int, run_model: ModelCall) -> None:
        self.io = io
        self.max_batch = max_batch
        self._run_model = run_model

    @property
    def inputs(self) -> list[InputSpec]:
        return self.io.inputs

    @property
    def output_names(self) -> list[str]:
        return self.io.output_names

    @property
    def on_nan(self) -> OnNaN:
        return self.io.on_nan

    def predict_many(self, events: np.ndarray | Mapping[str, np.ndarray]) -> Result:
        """Outputs for a whole chunk (first axis = events), in slices of ``max_batch``.

        With ``on_nan="raise"``, raises InputError naming the rows that hold NaN;
        nothing is computed then.
        """
        arrays = events if isinstance(events, Mapping) else {self.inputs[0].name: events}
        feeds, bad = self.io.chunk_feeds(arrays)
        if bad.any():
            raise InputError(f"rows {np.flatnonzero(bad).tolist()[:20]} hold NaN")
        n = len(next(iter(feeds.values())))
        parts = [
            self._run_model({k: v[i : i + self.max_batch] for k, v in feeds.items()})
            for i in range(0, n, self.max_batch)
        ]
        outputs = [np.concatenate([p[j] for p in parts]) for j in range(len(self.output_names))]
        return (
            outputs[0] if len(outputs) == 1 else dict(zip(self.output_names, outputs, strict=True))
        )

    def _one(self, event: Event) -> Result:
        """One event straight through the model at batch 1, in the caller's thread."""
        return self.io.pick(self._run_model(self.io.event_feeds(event)), 0)
