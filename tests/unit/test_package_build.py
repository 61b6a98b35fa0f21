"""``batchml.package.build``: the folder, its metadata, its validation, its failure modes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

from batchml.errors import InvalidValue
from batchml.package import (
    BuildOptions,
    Tolerance,
    ValidationFailed,
    build,
    check_manifest,
    publish_package,
)
from batchml.registry import Registry
from tests.unit.package_fixtures import VARIABLES, package, publish, run_without_batchml


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pkg")
    return package(base / "registry", base / "out", int8=True, fp16=True, bench_seconds=0.002)


def test_the_folder_holds_every_artifact_and_a_clean_manifest(built: Path) -> None:
    names = {p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()}
    assert names == {
        "MANIFEST",
        "MANIFEST.json",
        "model.onnx",
        "model.cmssw.onnx",
        "model.int8.onnx",
        "model.fp16.onnx",
        "preprocess.json",
        "metadata.json",
        "validation.json",
        "benchmark.csv",
        "benchmark.png",
        "triton/jets/config.pbtxt",
        "triton/jets/1/model.onnx",
    }
    assert check_manifest(built) == []
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_manifest_names_a_changed_file(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    (copy / "preprocess.json").write_text("{}")
    assert check_manifest(copy) == ["preprocess.json: sha256 differs"]


def test_sha256sum_checks_the_manifest(built: Path, tmp_path: Path) -> None:
    def sha256sum(folder: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sha256sum", "--check", "--strict", "MANIFEST"], cwd=folder,
                              capture_output=True, text=True, check=False)  # fmt: skip

    intact = sha256sum(built)
    assert intact.returncode == 0 and not intact.stderr, intact.stderr
    assert "triton/jets/1/model.onnx: OK" in intact.stdout.splitlines()
    assert (
        len(intact.stdout.splitlines())
        == len(json.loads((built / "MANIFEST.json").read_text())["files"])
        == 11
    )  # all but the two manifests
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    (copy / "model.onnx").write_bytes(b"changed")
    changed = sha256sum(copy)
    assert changed.returncode == 1 and "model.onnx: FAILED" in changed.stdout.splitlines()


def test_manifest_json_holds_every_size(built: Path) -> None:
    record = json.loads((built / "MANIFEST.json").read_text())
    assert (record["format"], record["format_version"]) == ("batchml-package-manifest", 2)
    for rel, entry in record["files"].items():
        assert entry["size"] == (built / rel).stat().st_size, rel


def test_metadata_inside_the_onnx_file(built: Path) -> None:
    model = onnx.load(built / "model.onnx")
    props = {p.key: p.value for p in model.metadata_props}
    assert props["batchml.registry_uri"] == "batchml:jets/1"
    assert props["batchml.digest"].startswith("sha256:")
    assert json.loads(props["batchml.variables"]) == {"x": VARIABLES}
    assert json.loads(props["batchml.normalisation"])["x"]["pt"]["norm_factor"] == 0.05
    assert json.loads(props["batchml.output_labels"]) == ["signal", "background"]
    assert props["batchml.exporter"] == "dynamo"
    assert props["batchml.opset"] == "18"
    assert (model.ir_version, model.model_version) == (8, 1)  # opset 18 needs IR 8; version 1
    assert not [n.name for n in model.graph.node if n.metadata_props]  # IR 10 fields dropped
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_preprocess_json_has_the_cmssw_layout(built: Path) -> None:
    spec = json.loads((built / "preprocess.json").read_text())
    assert spec["input_names"] == ["x"] and spec["output_names"] == ["output"]
    assert spec["x"]["var_names"] == VARIABLES and spec["x"]["var_length"] == 1
    info = spec["x"]["var_infos"]["pt"]
    for key in ("median", "norm_factor", "replace_inf_value", "lower_bound", "upper_bound", "pad"):
        assert isinstance(info[key], float)
    assert (info["median"], info["min"], info["max"]) == (50.0, 0.0, 200.0)


def test_validation_covers_both_sources_and_every_batch_size(built: Path) -> None:
    report = json.loads((built / "validation.json").read_text())
    model = report["model"]
    assert model["passed"] and model["tolerance"]["atol"] == 1e-5
    assert sorted({(c["input"], c["batch"]) for c in model["cases"]}) == [
        (s, n) for s in ("example", "random") for n in (1, 2, 7, 32, 64)
    ]
    for precision in ("int8", "fp16"):  # the accuracy change is stated, and plausible
        assert 0 < report[precision]["max_abs"] < 0.5, precision
        assert report[precision]["note"].startswith("stated, not enforced")


def test_the_fp16_model_computes_in_float16_behind_float32_inputs(built: Path) -> None:
    import onnxruntime as ort

    graph = onnx.load(built / "model.fp16.onnx").graph
    weights = {t.data_type for t in graph.initializer}
    assert weights == {onnx.TensorProto.FLOAT16}
    session = ort.InferenceSession(str(built / "model.fp16.onnx"))
    assert [i.type for i in session.get_inputs()] == ["tensor(float)"]
    assert [o.type for o in session.get_outputs()] == ["tensor(float)"]


def test_benchmark_table_per_thread_count_and_batch(built: Path) -> None:
    lines = (built / "benchmark.csv").read_text().splitlines()
    assert lines[0].startswith("intra_op_threads,batch,p50_ms,p90_ms,p99_ms,rows_per_s")
    assert {line.split(",")[1] for line in lines[1:]} == {"1", "2", "4", "8", "16", "32"}
    assert (built / "benchmark.png").read_bytes()[:4] == b"\x89PNG"


def test_a_fresh_process_without_batchml_gets_the_validated_outputs(
    built: Path, tmp_path: Path
) -> None:
    version = Registry(built.parent / "registry").get("jets/1")
    example = version.input_example()["x"]
    got = run_without_batchml(built, "x", example, tmp_path)
    expected = version.load_exported().module()(__import__("torch").from_numpy(example))
    np.testing.assert_allclose(got, expected.detach().numpy(), atol=1e-5)


def test_failed_validation_leaves_nothing_behind(tmp_path: Path) -> None:
    version = publish(tmp_path / "registry")
    options = BuildOptions(max_batch=8, tolerance=Tolerance(atol=0.0, rtol=0.0), bench_seconds=None)
    with pytest.raises(ValidationFailed, match="differs from torch"):
        build(version, tmp_path / "out", options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry"]


def test_an_existing_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("mine")
    with pytest.raises(InvalidValue, match="not empty"):
        build(publish(tmp_path / "registry"), tmp_path / "out")


def test_the_package_is_attached_to_its_own_version_once(built: Path) -> None:
    registry = Registry(built.parent / "registry")
    before = registry.get("jets/1")
    attached = publish_package(registry, built)
    assert (attached.name, attached.version, attached.kind) == ("jets", 1, "onnx-package")
    version = registry.get("jets/1")
    assert registry.models() == ["jets"] and version.digest == before.digest
    assert version.attachments() == ["onnx-package"]
    assert check_manifest(version.attachment("onnx-package").folder) == []
    with pytest.raises(InvalidValue, match="jets/1 already has a 'onnx-package' attachment"):
        publish_package(registry, built)
    assert registry.verify() == []
