"""What travels with the ONNX file: ``preprocess.json`` and the graph's ``metadata_props``.

``preprocess.json`` is the file CMSSW's ParticleNet-style ONNX producers read
(``ParticleNetConstructor`` in ``RecoBTag/FeatureTools/src/deep_helpers.cc``),
so a package drops into a CMSSW workflow without glue code. That reader takes:
``input_names``; per input group ``var_names``, the group's length as
``var_length`` (else ``min_length`` and ``max_length``), and per variable in
``var_infos`` ``median``, ``norm_factor``, ``replace_inf_value``,
``lower_bound``, ``upper_bound`` and optionally ``pad``. It feeds a group as a
float32 tensor ``(1, len(var_names), length)``, each value
``clamp((catch_infs(x) - median) * norm_factor, lower_bound, upper_bound)``
where ``catch_infs`` turns infinities, NaN and values beyond 1e32 into
``replace_inf_value`` first, and pads with ``pad``. An input ``(batch,
variables)`` is a group of length 1; ``(batch, length, variables)`` one of that
length. The reader looks up only those keys, so the extra ones written here
(``format``, ``output_labels``; ``dtype`` and ``shape`` of a group; the raw
training range ``min``/``max`` of a variable) do not disturb it. The model
itself takes normalised inputs, exactly as it did in training.

The normalisation constants come from the version's ``preprocessing`` record:
``FeatureStats.to_dict()`` (``{"features": {name: {mean, std, min, max}}}``),
optionally one per input name; variables are matched by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from batchml.errors import InvalidValue

FORMAT = "batchml-preprocess"
FORMAT_VERSION = 1
NO_BOUND = 1e32  # what CMSSW configs write for "no clipping"
PREFIX = "batchml."


def variable_names(entry: Mapping[str, Any]) -> list[str]:
    """The names along an input's last axis: the signature's, else ``<input>_<i>``."""
    if "variables" in entry:
        return list(entry["variables"])
    width = entry["shape"][-1] if len(entry["shape"]) > 1 else 1
    return [f"{entry['name']}_{i}" for i in range(int(width))]


def _stats_for(preprocessing: Mapping[str, Any], input_name: str) -> Mapping[str, Any]:
    per_input = preprocessing.get(input_name)
    if isinstance(per_input, Mapping) and "features" in per_input:
        return dict(per_input["features"])
    return dict(preprocessing.get("features", {}))


def preprocess_spec(
    signature: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    output_names: list[str],
    output_labels: list[str],
) -> dict[str, Any]:
    """The ``preprocess.json`` content: one group per input, variables in model order."""
    spec: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "input_names": [entry["name"] for entry in signature["inputs"]],
        "output_names": output_names,
        "output_labels": output_labels,
    }
    for entry in signature["inputs"]:
        if entry["name"] in spec:
            raise InvalidValue(
                f"input name {entry['name']!r} is also a top-level key of preprocess.json",
                hint="publish the model again with another input name",
            )
        names = variable_names(entry)
        stats = _stats_for(preprocessing, entry["name"])
        spec[entry["name"]] = {
            "dtype": entry["dtype"],
            "shape": entry["shape"],
            "var_names": names,
            **_length(entry["shape"]),
            "var_infos": {name: _var_info(stats.get(name)) for name in names},
        }
    return spec


def _length(shape: list[Any]) -> dict[str, int]:
    """The group's length as CMSSW's reader takes it; none for ranks it cannot feed."""
    if len(shape) <= 2:  # [batch] or [batch, variables]: one value per variable
        return {"var_length": 1}
    if len(shape) == 3 and isinstance(shape[1], int):  # [batch, length, variables]
        return {"var_length": shape[1]}
    return {}


def _var_info(stats: Mapping[str, float] | None) -> dict[str, float]:
    """One variable's constants; without statistics it passes through unchanged."""
    info = {
        "median": 0.0,
        "norm_factor": 1.0,
        "replace_inf_value": 0.0,
        "lower_bound": -NO_BOUND,
        "upper_bound": NO_BOUND,
        "pad": 0.0,
    }
    if stats:
        std = float(stats["std"])
        info["median"] = float(stats["mean"])
        info["norm_factor"] = 1.0 / std if std > 0 else 1.0
        info["min"], info["max"] = float(stats["min"]), float(stats["max"])
    return info


def normalise(spec: Mapping[str, Any], input_name: str, raw: np.ndarray) -> np.ndarray:
    """Raw values -> model inputs with one input's constants, in ``raw``'s dtype.

    BatchedSession's own function (so the two cannot differ), which computes
    what CMSSW's reader does: infinities, NaN and values beyond 1e32 replaced,
    centred, scaled and clipped.
    """
    from batchml.inference.spec import scaling_of

    return scaling_of(spec[input_name], raw.dtype).apply(raw).astype(raw.dtype, copy=False)


def training_range(
    spec: Mapping[str, Any], input_name: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """Raw (min, max) per variable, when every variable of the input has statistics."""
    group = spec[input_name]
    infos = [group["var_infos"][v] for v in group["var_names"]]
    if not all("min" in i for i in infos):
        return None
    return np.array([i["min"] for i in infos]), np.array([i["max"] for i in infos])


def metadata_props(
    version: Any, spec: Mapping[str, Any], exporter: str, opset: int
) -> dict[str, str]:
    """String key/values stored inside model.onnx, so the file alone says what it is."""
    variables = {name: spec[name]["var_names"] for name in spec["input_names"]}
    normalisation = {
        name: {v: _constants(spec[name]["var_infos"][v]) for v in spec[name]["var_names"]}
        for name in spec["input_names"]
    }
    return {
        f"{PREFIX}registry_uri": version.uri,
        f"{PREFIX}digest": f"sha256:{version.digest}",
        f"{PREFIX}variables": json.dumps(variables),
        f"{PREFIX}normalisation": json.dumps(normalisation),
        f"{PREFIX}output_names": json.dumps(spec["output_names"]),
        f"{PREFIX}output_labels": json.dumps(spec["output_labels"]),
        f"{PREFIX}exporter": exporter,
        f"{PREFIX}opset": str(opset),
    }


def _constants(info: Mapping[str, float]) -> dict[str, float]:
    return {k: info[k] for k in ("median", "norm_factor", "lower_bound", "upper_bound")}


def set_metadata(onnx_model: Any, props: Mapping[str, str]) -> None:
    """Replace the graph's batchml metadata with ``props`` (other producers' keys are kept)."""
    kept = [(p.key, p.value) for p in onnx_model.metadata_props if not p.key.startswith(PREFIX)]
    del onnx_model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value
