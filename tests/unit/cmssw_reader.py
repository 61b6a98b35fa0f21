"""A Python transcription of how CMSSW reads ``preprocess.json`` and builds a model's inputs.

Written from the C++ of cms-sw/cmssw, read at these commits (transcribed, not
copied; C++ names kept so the two can be compared line by line):

- ``RecoBTag/FeatureTools/src/deep_helpers.cc`` at 0a7a6cbc43bded591471990ee3922b09c2e5d4be:
  ``catch_infs``, ``center_norm_pad``, and ``ParticleNetConstructor``'s
  ``preprocess_json`` branch.
- ``RecoBTag/FeatureTools/interface/deep_helpers.h`` at 023872b64ab7b4111d0afcb9ed8bd91e7835f22f:
  ``PreprocessParams`` and its ``VarInfo``, whose constants are ``float``.
- ``RecoBTag/ONNXRuntime/plugins/BoostedJetONNXJetTagsProducer.cc`` at
  28bcc71f1a94480fbf2a711ada2a59938d9e94fa: ``make_inputs``, which lays a
  group out variable by variable and sets the shape's last entry.

Another stored version of deep_helpers.cc (ecc4a8027451d722cad67eeac05ebcb2df8536eb)
pushes the ``(1, n_vars, -1)`` shape only for ``min_length``/``max_length``
groups; for ``var_length`` groups the runtime then takes the model's own input
shape (``cms::Ort::ONNXRuntime::run`` with empty ``input_shapes``). Both are
transcribed: ``shape_from_json`` says which.

nlohmann's ``at()`` raises on a missing key; ``KeyError`` stands for it here.
Arithmetic is float32 where the C++ uses ``float``; ``catch_infs`` compares a
float with the double literal 1e32, so that comparison is in float64.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

f32 = np.float32


@dataclass(frozen=True)
class VarInfo:
    center: np.float32
    norm_factor: np.float32
    replace_inf_value: np.float32
    lower_bound: np.float32
    upper_bound: np.float32
    pad: np.float32


@dataclass(frozen=True)
class PreprocessParams:
    min_length: int
    max_length: int
    var_names: list[str]
    var_info_map: dict[str, VarInfo]
    shape_from_json: bool  # False: ecc4a802's var_length groups, shaped by the model


def _number(value: Any) -> float:
    """What nlohmann's conversion of a JSON value to a number accepts: numbers, not bools."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"type must be number, but is {type(value).__name__}")
    return float(value)


def _unsigned(value: Any) -> int:
    return int(_number(value))


def particle_net_constructor(
    js: Mapping[str, Any], push_every_shape: bool = True
) -> tuple[list[str], dict[str, PreprocessParams]]:
    """``ParticleNetConstructor``, preprocess_json branch: input names and each group's params.

    ``push_every_shape``: 0a7a6cbc (every group shaped from the JSON) or ecc4a802 (False).
    """
    input_names = [str(n) for n in js["input_names"]]
    prep_info_map = {}
    for group_name in input_names:
        group_pset = js[group_name]
        var_names = [str(n) for n in group_pset["var_names"]]
        if "var_length" in group_pset:
            min_length = max_length = _unsigned(group_pset["var_length"])
            from_json = push_every_shape
        else:
            min_length = _unsigned(group_pset["min_length"])
            max_length = _unsigned(group_pset["max_length"])
            from_json = True
        var_info_pset = group_pset["var_infos"]
        infos = {}
        for var_name in var_names:
            var_pset = var_info_pset[var_name]
            infos[var_name] = VarInfo(
                f32(_number(var_pset["median"])),
                f32(_number(var_pset["norm_factor"])),
                f32(_number(var_pset["replace_inf_value"])),
                f32(_number(var_pset["lower_bound"])),
                f32(_number(var_pset["upper_bound"])),
                f32(_number(var_pset["pad"])) if "pad" in var_pset else f32(0),
            )
        prep_info_map[group_name] = PreprocessParams(
            min_length, max_length, var_names, infos, from_json
        )
    return input_names, prep_info_map


def catch_infs(x: np.float32, replace_value: np.float32) -> np.float32:
    if not np.isfinite(x):
        return replace_value
    if float(x) < -1e32 or float(x) > 1e32:
        return replace_value
    return x


def _clamp(v: np.float32, lo: np.float32, hi: np.float32) -> np.float32:
    """``std::clamp``: ``v < lo ? lo : hi < v ? hi : v``."""
    if v < lo:
        return lo
    if hi < v:
        return hi
    return v


def center_norm_pad(
    values: Sequence[float],
    info: VarInfo,
    min_length: int,
    max_length: int,
    datavec: np.ndarray,
    startval: int,
) -> int:
    assert info.lower_bound <= info.pad <= info.upper_bound
    assert min_length <= max_length
    target_length = min(max(len(values), min_length), max_length)
    for i in range(target_length):
        if i < len(values):
            caught = catch_infs(f32(values[i]), info.replace_inf_value)
            datavec[i + startval] = _clamp(
                f32(f32(caught - info.center) * info.norm_factor),
                info.lower_bound,
                info.upper_bound,
            )
        else:
            datavec[i + startval] = info.pad
    return target_length


def make_inputs(
    input_names: list[str],
    prep_info_map: Mapping[str, PreprocessParams],
    features: Mapping[str, Sequence[float]],
) -> dict[str, tuple[np.ndarray, list[int] | None]]:
    """``make_inputs`` for one jet: each group's float32 data and the shape it is fed with.

    ``features[var]`` is the candidate values of one variable (one value for a
    jet-level variable). The shape is None where the runtime takes the model's.
    """
    data = {}
    for group_name in input_names:
        prep_params = prep_info_map[group_name]
        n_vars = len(prep_params.var_names)
        group_values = np.zeros(prep_params.max_length * n_vars, dtype=np.float32)
        shape: list[int] | None = [1, n_vars, -1] if prep_params.shape_from_json else None
        curr_pos = 0
        for i, varname in enumerate(prep_params.var_names):
            insize = center_norm_pad(
                features[varname],
                prep_params.var_info_map[varname],
                prep_params.min_length,
                prep_params.max_length,
                group_values,
                curr_pos,
            )
            curr_pos += insize
            if i == 0 and shape is not None:
                shape[2] = insize
        data[group_name] = (group_values[:curr_pos], shape)
    return data
