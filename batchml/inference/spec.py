"""What a model takes per event, and how ``preprocess.json`` turns raw values into it.

Rows are preprocessed as CMSSW's reader does (``RecoBTag/FeatureTools/src/deep_helpers.cc``):
infinities, NaN and values beyond 1e32 become ``replace_inf_value``, then
``(x - median) * norm_factor`` is clipped to the bounds, in the input's dtype.
The packager (batchml/package/metadata.py) normalises with the same ``Scaling``,
so what a package was validated with and what a session feeds cannot differ.

A session batches events of one fixed shape along the first axis, so every
other axis of an input must have a fixed size, and its element type must be
one numpy can hold; a model that breaks either is refused when the session is
made (``UnsupportedModel``), naming the input and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from batchml.errors import BatchmlError

Event = np.ndarray | Sequence[float] | Mapping[str, Any]
Row = tuple[np.ndarray, ...]
Feeds = dict[str, np.ndarray]
Result = np.ndarray | dict[str, np.ndarray]
OnNaN = Literal["replace", "raise"]
HUGE = np.float64(1e32)  # CMSSW's catch_infs replaces beyond this (compared in double precision)
PREPROCESS = "preprocess.json"
ORT_DTYPES = {  # ONNX Runtime's element type names -> numpy
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


class InputError(BatchmlError, ValueError):
    """One event cannot be fed to the model; raised in that event's caller only."""

    exit_code = 2


class UnsupportedModel(BatchmlError, ValueError):
    """The package's model has an input that a session cannot feed event by event."""

    exit_code = 2


def check_on_nan(on_nan: str) -> None:
    """ValueError unless ``on_nan`` is one of the two ways a session treats NaN."""
    if on_nan not in ("replace", "raise"):
        raise ValueError(f"on_nan={on_nan!r} must be 'replace' or 'raise'")


def nan_error() -> InputError:
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


def read_preprocess(folder: Path) -> dict[str, Any]:
    """The package's preprocess.json, or {} where it has none (every input fed as is)."""
    path = folder / PREPROCESS
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def event_shape(name: str, dims: Sequence[Any], model: str) -> tuple[int, ...]:
    """An input's per-event shape: its dimensions after the batch axis, each a fixed size.

    ONNX Runtime gives a symbolic dimension as its name (or None), Triton as -1.
    """
    for axis, dim in enumerate(dims[1:], start=1):
        if not isinstance(dim, int) or dim < 0:
            raise UnsupportedModel(
                f"{model}: input {name!r} has shape {list(dims)}, whose axis {axis} ({dim!r}) "
                "has no fixed size; a session batches events of one shape along axis 0 only",
                hint="export the model with a fixed size for every axis but the first (the batch)",
            )
    return tuple(dims[1:])


def feedable_dtype(name: str, declared: str, dtype: Any, model: str, feeds: str) -> np.dtype:
    """The numpy dtype of an input declared as ``declared``; ``dtype`` is None where none matches.

    ``feeds`` names the types the session does feed, for the message.
    """
    if dtype is None:
        raise UnsupportedModel(
            f"{model}: input {name!r} takes {declared}, which a session does not feed",
            hint=f"export the model with inputs of a type it feeds ({feeds}), casting inside "
            "the model",
        )
    return np.dtype(dtype)


def onnx_dtype(name: str, declared: str, model: str) -> np.dtype:
    """The numpy dtype of an ONNX input (``tensor(float)`` and the like)."""
    return feedable_dtype(name, declared, ORT_DTYPES.get(declared), model, ", ".join(ORT_DTYPES))


def input_spec(
    name: str, shape: tuple[int, ...], dtype: np.dtype, preprocess: Mapping[str, Any]
) -> InputSpec:
    """One input, scaled where preprocess.json has a group for it."""
    group = preprocess.get(name)
    return InputSpec(name, shape, dtype, scaling_of(group, dtype) if group else None)
