"""An ONNX file that the ONNX Runtime of an older CMSSW release loads.

An ONNX Runtime refuses a file whose IR version is newer than it knows (1.16
and 1.17, in recent CMSSW releases, know IR 9; torch writes IR 10 whatever the
opset), even when every operator is one it runs. The IR version a file needs
follows from its opsets (the onnx package's version table), so the file is
written with that, the lowest, one. Fields a lower IR version does not have
(per-node and per-graph ``metadata_props``, IR 10: torch's stack traces, which
also name the exporting user's source paths) are dropped, since a runtime that
knows the lower version could not read them anyway.

The symbolic batch dimension gets the name ``batch`` everywhere (the dynamo
exporter names it after its internal symbol, ``s77`` and the like), so
Triton, Netron and a reader of the graph see what it is.
"""

from __future__ import annotations

from typing import Any

BATCH = "batch"
DEFAULT_DOMAINS = ("", "ai.onnx")
FUNCTIONS_IR = 8  # model-local functions arrived with IR 8
METADATA_IR = 10  # metadata_props on nodes, graphs and functions arrived with IR 10
CLASSIC_TYPES_MAX = 16  # TensorProto.BFLOAT16; the float8, int4 and float4 types came later


def opset_of(model: Any) -> int:
    """The version of the default (``ai.onnx``) operator set the file imports."""
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        raise ValueError("the ONNX model imports no ai.onnx operator set")
    return int(versions[0])


def make_portable(model: Any) -> None:
    """Name the batch dimension and lower the IR version to what the opsets need (in place).

    Raises ``onnx.checker.ValidationError`` if the result is not a valid model.
    """
    import onnx

    name_batch_dimension(model)
    lowest = lowest_ir_version(model)
    if lowest < model.ir_version:
        if lowest < METADATA_IR:
            _drop_metadata(model)
        model.ir_version = lowest
    onnx.checker.check_model(model)


def lowest_ir_version(model: Any) -> int:
    """The lowest IR version that holds this model; its own where types newer than IR 8 appear."""
    from onnx import helper

    if _newer_types(model):
        return int(model.ir_version)
    lowest = helper.find_min_ir_version_for(model.opset_import, ignore_unknown=True)
    if len(model.functions):
        lowest = max(lowest, FUNCTIONS_IR)
    return int(lowest)


def name_batch_dimension(model: Any) -> None:
    """Rename the symbol of the inputs' first dimension to ``batch`` wherever it appears."""
    graph = model.graph
    symbols = {
        dims[0].dim_param
        for value in graph.input
        if (dims := value.type.tensor_type.shape.dim) and dims[0].dim_param
    }
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in symbols:
                dim.dim_param = BATCH


def _drop_metadata(model: Any) -> None:
    _drop_graph_metadata(model.graph)
    for function in model.functions:
        del function.metadata_props[:]
        _drop_node_metadata(function.node)


def _drop_graph_metadata(graph: Any) -> None:
    del graph.metadata_props[:]
    _drop_node_metadata(graph.node)


def _drop_node_metadata(nodes: Any) -> None:
    for node in nodes:
        del node.metadata_props[:]
        for graph in subgraphs(node):
            _drop_graph_metadata(graph)


def subgraphs(node: Any) -> list[Any]:
    """The graphs held by a node's attributes: the branches of an If, a Loop's body."""
    found = []
    for attribute in node.attribute:
        found += [*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs]
    return found


def _newer_types(model: Any) -> bool:
    values = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    types = {v.type.tensor_type.elem_type for v in values}
    types |= {t.data_type for t in model.graph.initializer}
    return max(types, default=0) > CLASSIC_TYPES_MAX
