"""Packages as CMSSW takes them: the ONNX Runtime of its releases, its reader of preprocess.json.

The runtime is real: ``onnxruntime==1.16.3`` in a virtual environment of its
own (``old_onnxruntime``). The reader is a transcription of CMSSW's C++
(tests/unit/cmssw_reader.py), fed the package's own ``preprocess.json``; its
tensors go into the package's ``model.cmssw.onnx`` there, and must give what
``BatchedSession`` gives for the same raw values.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from batchml.inference import BatchedSession, InputError
from batchml.package import BuildOptions, build
from batchml.package.export import OpsetRefused
from batchml.registry import Registry
from tests.unit import cmssw_reader
from tests.unit.package_fixtures import (
    STATS,
    VARIABLES,
    Runtime,
    package,
    run_without_batchml,
)

SEQUENCE = ["pt", "eta"]  # the variables of each of the 4 candidates of the sequence input


class Echo(torch.nn.Module):
    """Returns its (normalised) input: the package's outputs are its preprocessing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


class CumSum(torch.nn.Module):
    """cumsum has no ONNX operator before opset 11."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(self.linear(x), dim=-1)


def _publish(root: Path, name: str, module: torch.nn.Module, example: np.ndarray) -> None:
    variables = VARIABLES if example.ndim == 2 else SEQUENCE
    torch.manual_seed(0)
    Registry(root).publish(
        name, module, input_example=example, input_names=["x"],
        variables={"x": variables}, preprocessing=STATS,
    )  # fmt: skip


def _build(root: Path, name: str, out: Path, **options: object) -> Path:
    version = Registry(root).get(f"{name}/1")
    return build(version, out, BuildOptions(max_batch=8, bench_seconds=None, **options))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def at_opset(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The two-class MLP packaged at opsets 13 and 17."""
    base = tmp_path_factory.mktemp("opsets")
    return {
        opset: package(base / f"registry{opset}", base / f"out{opset}", opset=opset,
                       bench_seconds=None)
        for opset in (13, 17)
    }  # fmt: skip


@pytest.fixture(scope="module")
def echoes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Packages of Echo for a flat input (3 variables) and a sequence (4 candidates x 2)."""
    base = tmp_path_factory.mktemp("echo")
    rng = np.random.default_rng(1)
    _publish(base / "registry", "flat", Echo(), rng.normal(size=(8, 3)).astype(np.float32))
    _publish(base / "registry", "sequence", Echo(), rng.normal(size=(8, 4, 2)).astype(np.float32))
    return {name: _build(base / "registry", name, base / name) for name in ("flat", "sequence")}


@pytest.mark.parametrize(("opset", "ir_version"), [(13, 7), (17, 8)])
def test_the_file_has_the_opset_asked_for_the_lowest_ir_version_and_a_batch_dimension(
    at_opset: dict[int, Path], opset: int, ir_version: int
) -> None:
    folder = at_opset[opset]
    model = onnx.load(folder / "model.onnx")
    assert [(o.domain, o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")] == [
        ("", opset)
    ]
    assert (
        model.ir_version
        == ir_version
        == onnx.helper.find_min_ir_version_for(model.opset_import, ignore_unknown=True)
    )
    assert model.model_version == 1  # the registry version
    for value in [*model.graph.input, *model.graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch", value.name
    meta = json.loads((folder / "metadata.json").read_text())
    props = {p.key: p.value for p in model.metadata_props}
    assert meta["opset"] == opset and props["batchml.opset"] == str(opset)
    assert meta["onnx_ir_version"] == ir_version
    if opset == 13:  # dynamo writes 18, onnx's converter has no way down for Relu: TorchScript
        assert meta["exporter"] == "torchscript"
        assert "version converter cannot make it 13" in meta["dynamo_error"]
    else:
        assert meta["exporter"] == "dynamo"


@pytest.mark.parametrize("opset", [13, 17])
def test_onnxruntime_1_16_runs_the_package_as_torch_does(
    at_opset: dict[int, Path], opset: int, old_onnxruntime: Runtime, tmp_path: Path
) -> None:
    folder = at_opset[opset]
    version = Registry(folder.parent / f"registry{opset}").get("jets/1")
    rng = np.random.default_rng(opset)
    x = np.concatenate([version.input_example()["x"], rng.normal(size=(40, 3))]).astype(np.float32)
    expected = version.load_exported().module()(torch.from_numpy(x)).detach().numpy()
    got = run_without_batchml(folder, "x", x, tmp_path, old_onnxruntime)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    cmssw = run_without_batchml(folder, "x", x[:, :, None], tmp_path, old_onnxruntime,
                                model="model.cmssw.onnx")  # fmt: skip
    np.testing.assert_allclose(cmssw, expected, rtol=0, atol=1e-5)


def test_an_opset_no_exporter_writes_is_refused_with_the_lowest_that_works(
    tmp_path: Path,
) -> None:
    _publish(tmp_path / "registry", "cumsum", CumSum(), np.ones((4, 3), dtype=np.float32))
    with pytest.raises(OpsetRefused) as refused:
        _build(tmp_path / "registry", "cumsum", tmp_path / "out", opset=10)
    message = str(refused.value)
    assert "cannot be written at ONNX opset 10" in message
    assert "cumsum in opset" in message  # the TorchScript exporter's reason
    assert "use --opset 11, the lowest" in message
    assert refused.value.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry"]  # nothing written


def _reader(folder: Path, push_every_shape: bool = True) -> tuple[list[str], dict]:
    spec = json.loads((folder / "preprocess.json").read_text())
    return cmssw_reader.particle_net_constructor(spec, push_every_shape)


def test_cmssw_reads_the_length_and_constants_of_every_group(echoes: dict[str, Path]) -> None:
    names, params = _reader(echoes["flat"])
    assert names == ["x"] and params["x"].var_names == VARIABLES
    assert (params["x"].min_length, params["x"].max_length) == (1, 1)
    assert params["x"].var_info_map["pt"].norm_factor == np.float32(0.05)
    names, params = _reader(echoes["sequence"])
    assert params["x"].var_names == SEQUENCE
    assert (params["x"].min_length, params["x"].max_length) == (4, 4)


RAW = np.array(
    [
        [55.0, 0.3, -1.2],  # ordinary
        [500.0, -2.4, 3.0],  # beyond the clipping bounds below
        [np.inf, -np.inf, 0.5],  # infinities
        [np.nan, 1.0, np.nan],  # NaN
        [np.float32(1e32), -3e38, 9.9e31],  # just beyond 1e32 (as a double), far beyond, within
    ],
    dtype=np.float32,
)
CLIP = {"pt": (-1.0, 1.5), "eta": (-1.5, 1.5), "phi": (-0.5, 0.5)}


def _clipping_copy(folder: Path, work: Path) -> Path:
    """The package with bounds in preprocess.json, as a CMSSW user might set them."""
    copy = work / folder.name
    shutil.copytree(folder, copy)
    spec = json.loads((copy / "preprocess.json").read_text())
    for var, (low, high) in CLIP.items():
        spec["x"]["var_infos"][var].update(lower_bound=low, upper_bound=high)
        spec["x"]["var_infos"][var]["replace_inf_value"] = 40.0
    (copy / "preprocess.json").write_text(json.dumps(spec))
    return copy


def _cmssw_tensors(folder: Path, events: np.ndarray, push_every_shape: bool) -> np.ndarray:
    """Each event through the transcribed reader: (events, variables, length), float32."""
    names, params = _reader(folder, push_every_shape)
    tensors = []
    for event in events:
        per_variable = event.reshape(-1, event.shape[-1]).T  # variable -> its candidates
        features = dict(zip(params["x"].var_names, per_variable.tolist(), strict=True))
        data, shape = cmssw_reader.make_inputs(names, params, features)["x"]
        n_vars = len(params["x"].var_names)
        if shape is not None:
            assert shape[:2] == [1, n_vars]
        tensors.append(data.reshape(n_vars, -1))
    return np.stack(tensors)


@pytest.mark.parametrize("clipping", [False, True], ids=["as-built", "clipping"])
@pytest.mark.parametrize("push_every_shape", [True, False], ids=["0a7a6cbc", "ecc4a802"])
def test_batched_session_preprocesses_as_cmssw_does(
    echoes: dict[str, Path], tmp_path: Path, clipping: bool, push_every_shape: bool
) -> None:
    folder = _clipping_copy(echoes["flat"], tmp_path) if clipping else echoes["flat"]
    cmssw = _cmssw_tensors(folder, RAW, push_every_shape)  # (events, 3 variables, 1)
    with BatchedSession(folder, batching=False) as session:
        one_by_one = np.stack([session.predict(event) for event in RAW])
        chunk = session.predict_many(RAW)
    np.testing.assert_array_equal(one_by_one, cmssw[:, :, 0])  # bit for bit
    np.testing.assert_array_equal(chunk, cmssw[:, :, 0])
    assert np.isfinite(chunk).all()
    if clipping:
        low, high = (np.array(b, dtype=np.float32) for b in zip(*CLIP.values(), strict=True))
        assert (chunk >= low).all() and (chunk <= high).all() and (chunk == high).any()


def test_a_sequence_is_fed_variable_by_variable(echoes: dict[str, Path]) -> None:
    events = np.random.default_rng(5).normal(size=(3, 4, 2)).astype(np.float32) * 30
    events[0, 2, 1] = np.nan
    events[1, 0, 0] = np.inf
    cmssw = _cmssw_tensors(echoes["sequence"], events, push_every_shape=True)  # (3, 2, 4)
    with BatchedSession(echoes["sequence"]) as session:
        np.testing.assert_array_equal(session.predict_many(events), cmssw.transpose(0, 2, 1))


@pytest.mark.parametrize("shape", ["flat", "sequence"])
def test_cmssw_tensors_run_in_onnxruntime_1_16_as_batched_session_serves_them(
    echoes: dict[str, Path], shape: str, old_onnxruntime: Runtime, tmp_path: Path
) -> None:
    folder = echoes[shape]
    events = RAW if shape == "flat" else RAW[:, :2].repeat(4, axis=0).reshape(-1, 4, 2)
    cmssw = _cmssw_tensors(folder, events, push_every_shape=True)
    got = run_without_batchml(folder, "x", cmssw, tmp_path, old_onnxruntime,
                              model="model.cmssw.onnx")  # fmt: skip
    with BatchedSession(folder) as session:
        np.testing.assert_array_equal(got, session.predict_many(events))


def test_nan_can_still_be_refused(echoes: dict[str, Path]) -> None:
    with BatchedSession(echoes["flat"], on_nan="raise") as session:
        with pytest.raises(InputError, match="NaN"):
            session.predict(RAW[3])
        np.testing.assert_array_equal(session.predict(RAW[2]), _cmssw_tensors(
            echoes["flat"], RAW[2:3], push_every_shape=True)[0, :, 0])  # fmt: skip
