"""What travels with the ONNX file: ``preprocess.json`` and the graph's ``metadata_props``.

``preprocess.json`` uses the layout the CMSSW ONNX jet-tagging producers read
(``input_names``; per input ``var_names`` and ``var_infos`` with ``median``,
``norm_factor``, ``replace_inf_value``, ``lower_bound``, ``upper_bound``,
``pad``; ``output_names``), so a package drops into a CMSSW or Athena workflow
without glue code. A producer computes ``clip((x - median) * norm_factor,
lower_bound, upper_bound)``; ``min``/``max`` are the raw training range, kept
for reference (unknown keys are ignored by those readers). The model itself
takes normalised inputs, exactly as it did in training.

The normalisation constants come from the version's ``preprocessing`` record:
``FeatureStats.to_dict()`` (``{"features": {name: {mean, std, min, max}}}``),
optionally one per input name; variables are matched by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

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
        names = variable_names(entry)
        stats = _stats_for(preprocessing, entry["name"])
        group: dict[str, Any] = {
            "dtype": entry["dtype"],
            "shape": entry["shape"],
            "var_names": names,
            "var_infos": {name: _var_info(stats.get(name)) for name in names},
        }
        if len(entry["shape"]) == 3:  # [batch, length, variables]: padded sequences
            group["var_length"] = entry["shape"][1]
        spec[entry["name"]] = group
    return spec


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
    """Apply one input's constants to raw values, as BatchedSession and CMSSW producers do."""
    from batchml.inference import scaling_of

    return scaling_of(spec[input_name]).apply(raw).astype(raw.dtype)


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
