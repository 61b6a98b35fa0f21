"""``model.cmssw.onnx``: the model with its inputs laid out as CMSSW's reader feeds them.

CMSSW's ParticleNet-style producers fill each input group from
``preprocess.json`` variable by variable (``make_inputs`` in
``RecoBTag/ONNXRuntime/plugins/BoostedJetONNXJetTagsProducer.cc``): a float32
tensor ``(1, variables, length)``. A batchml model takes ``(batch, variables)``
or ``(batch, length, variables)``, which that tensor does not fit. This copy of
the graph takes ``(batch, variables, length)`` (length 1 for a flat input) and
puts one Flatten or Transpose in front of the model; nothing else changes. With
the length fixed in the declared shape, it also serves the reader's variant
that shapes ``var_length`` groups from the model's own input shape.

Written only when every input is a float32 group with a ``var_length``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from batchml.package.portable import BATCH, subgraphs

FILE = "model.cmssw.onnx"
INNER = "{}.batchml_layout"  # the model's own input, now computed from the CMSSW one


def feedable(spec: Mapping[str, Any]) -> bool:
    """Whether every input of ``preprocess.json`` is a group CMSSW's reader fills as float32."""
    groups = [spec[name] for name in spec["input_names"]]
    return all(
        "var_length" in g and g["dtype"] == "float32" and len(g["shape"]) in (2, 3) for g in groups
    )


def cmssw_model(onnx_model: Any, spec: Mapping[str, Any]) -> Any:
    """A copy of ``onnx_model`` whose inputs are ``(batch, variables, length)``."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.ModelProto()
    model.CopyFrom(onnx_model)
    graph = model.graph
    inputs = list(graph.input)
    del graph.input[:]
    adapters = []
    for value in inputs:
        group = spec[value.name]
        inner = INNER.format(value.name)
        _rename_uses(graph, value.name, inner)
        if len(group["shape"]) == 3:
            adapters.append(helper.make_node("Transpose", [value.name], [inner], perm=[0, 2, 1]))
        else:
            adapters.append(helper.make_node("Flatten", [value.name], [inner], axis=1))
        shape: list[str | int] = [BATCH, len(group["var_names"]), int(group["var_length"])]
        graph.input.append(helper.make_tensor_value_info(value.name, TensorProto.FLOAT, shape))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*adapters, *nodes])
    onnx.checker.check_model(model)
    return model


def cmssw_feeds(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's inputs in the CMSSW layout: ``(batch, variables, length)``."""
    return {
        name: np.ascontiguousarray(a.transpose(0, 2, 1) if a.ndim == 3 else a[:, :, None])
        for name, a in feeds.items()
    }


def _rename_uses(graph: Any, old: str, new: str) -> None:
    """Point every node that reads ``old`` (in subgraphs too) at ``new``."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for sub in subgraphs(node):
            _rename_uses(sub, old, new)
