"""Importing MLflow registries (file store, SQLite, a server on loopback) made with real MLflow."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from batchml.registry import Registry, RegistryError
from batchml.registry.mlflow_import import import_mlflow
from batchml.registry.mlflow_import.convert import convert
from batchml.registry.mlflow_import.source import ALLOW_FILE_STORE
from tests.unit.mlflow_source import MLP, NAME, MadeSource, make_source

SERVER_START_S = 180
# MLflow's SQLAlchemy store declares its mappers with a loader strategy SQLAlchemy 2.1
# deprecates; the warning is MLflow's, raised when MLflow's module is imported.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


REPOSITORY = Path(__file__).parents[2]  # the MLP's module (tests.unit.mlflow_source) is under it


@pytest.fixture(autouse=True)
def private_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own empty folder: MLflow's defaults create ./mlflow.db or ./mlruns."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def batchml(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process, in the test's folder, with the MLP's module importable."""
    path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "batchml.cli", "--no-color", *args],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip


@pytest.fixture(params=["file", "sqlite"])
def made(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> MadeSource:
    artifacts = (tmp_path / "artifacts").as_uri()
    if request.param == "file":
        monkeypatch.setenv(ALLOW_FILE_STORE, "true")  # MLflow 3.13+ writes file stores only so
        made = make_source((tmp_path / "mlruns").as_uri(), artifacts)
        monkeypatch.delenv(ALLOW_FILE_STORE)  # the import must read it without the user's help
        return made
    return make_source(f"sqlite:///{tmp_path / 'mlflow.db'}", artifacts)


def _by_source_version(registry: Registry) -> dict[int, int]:
    return {v.lineage["imported_from"]["version"]: v.version for v in registry.list(NAME)}


def test_import_keeps_versions_aliases_metrics_runs_and_files(
    made: MadeSource, tmp_path: Path, private_cwd: Path
) -> None:
    registry = Registry(tmp_path / "registry")
    environment = dict(os.environ)
    report = import_mlflow(registry, made.uri)
    assert [i.source for i in report.imported] == ["jets/1", "jets/2", "jets/3"]
    assert dict(os.environ) == environment  # MLflow's settings were changed for the reads only
    assert ALLOW_FILE_STORE not in os.environ
    assert list(private_cwd.iterdir()) == []  # the import made no ./mlflow.db, no ./mlruns
    numbers = _by_source_version(registry)
    assert registry.resolve("jets@champion").version == numbers[2]
    assert registry.resolve("jets@stage-production").version == numbers[3]
    for mlflow_version, number in numbers.items():
        version = registry.get(f"jets/{number}")
        origin = version.lineage["imported_from"]
        assert origin["run_id"] == made.run_ids[mlflow_version]
        assert origin["uri"] == made.uri and origin["experiment_name"] == "jets-search"
        assert version.metrics == made.metrics[mlflow_version]
        assert version.params == {"kind": origin["run_name"]}
    bdt, pickled, pt2 = (registry.get(f"jets/{numbers[n]}") for n in (1, 2, 3))
    assert "model/MLmodel" in bdt.files and bdt.manifest["model"]["kind"] == "files"
    for version in (pickled, pt2):  # the MLflow folder whole, and a program package build reads
        assert "extra/mlflow-model/MLmodel" in version.files
        assert version.manifest["model"]["exported"] == "model/exported.pt2"
    assert pickled.annotations["description"] == "pickled MLP"
    assert pickled.lineage["imported_from"]["version_tags"] == {"validated": "yes"}
    example = torch.from_numpy(made.example)
    with torch.no_grad():
        for version, mlflow_version in ((pickled, 2), (pt2, 3)):
            program = version.load_exported().module()
            expected = made.models[mlflow_version](example)
            torch.testing.assert_close(program(example), expected)

    again = import_mlflow(registry, made.uri)
    assert again.imported == [] and len(again.unchanged) == 3 and again.changed == []
    assert len(registry.versions(NAME)) == 3


def test_changes_at_the_source_are_reported_not_overwritten(
    made: MadeSource, tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "registry")
    import_mlflow(registry, made.uri)
    numbers = _by_source_version(registry)
    client = MlflowClient(made.uri, made.uri)
    with contextlib.ExitStack() as stack:
        if made.uri.startswith("file:"):
            stack.enter_context(_env(ALLOW_FILE_STORE, "true"))
        client.update_model_version(NAME, "2", description="retrained? no: re-described")
        client.set_model_version_tag(NAME, "2", "validated", "no")
        client.set_registered_model_alias(NAME, "champion", "3")
    report = import_mlflow(registry, made.uri)
    assert report.imported == []
    assert [(c.source, c.fields) for c in report.changed] == [
        ("jets/2", ["description", "version_tags"])
    ]
    assert registry.get(f"jets/{numbers[2]}").annotations["description"] == "pickled MLP"
    [conflict] = report.alias_conflicts
    assert (conflict.alias, conflict.found, conflict.wanted) == ("champion", numbers[2], numbers[3])
    assert registry.resolve("jets@champion").version == numbers[2]


@pytest.mark.parametrize("made", ["sqlite"], indirect=True)
def test_an_import_stopped_half_way_leaves_whole_versions_and_resumes(
    made: MadeSource, tmp_path: Path
) -> None:
    location = MlflowClient(made.uri, made.uri).get_model_version_download_uri(NAME, "2")
    files = Path(urlparse(location).path)
    files.rename(files.with_name("moved-away"))  # version 2's model files are gone for now
    registry = Registry(tmp_path / "registry")
    with pytest.raises(RegistryError, match="jets/2"):
        import_mlflow(registry, made.uri)
    assert registry.layout.numbers(NAME) == [1]  # version 1 whole, nothing of version 2
    assert list(registry.layout.staging.glob("*")) == []
    files.with_name("moved-away").rename(files)
    report = import_mlflow(registry, made.uri)
    assert [i.source for i in report.imported] == ["jets/2", "jets/3"]
    assert [source for source, _ in report.unchanged] == ["jets/1"]
    assert registry.resolve("jets@champion").version == 2


@contextlib.contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    os.environ[key] = value
    try:
        yield
    finally:
        del os.environ[key]


# -- a server on loopback, through the command line -----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 (SQLite backend, artifacts proxied), stopped after."""
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "served-artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/health", timeout=5) as answer,
            ):
                if answer.status == 200:
                    break
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer /health"
            time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its workers: our own group
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


def test_import_from_a_server_then_package_the_pytorch_model(server: str, tmp_path: Path) -> None:
    made = make_source(server, "mlflow-artifacts:/jets")
    root = tmp_path / "registry"
    first = batchml("registry", "--root", str(root), "import-mlflow", server)
    assert first.returncode == 0, first.stderr
    assert "imported jets/2 as batchml:jets/2" in first.stdout
    assert "input_example: MLflow input example" in first.stdout
    assert "alias jets@champion -> version 2" in first.stdout
    assert "3 versions imported, 0 already imported" in first.stdout
    again = batchml("registry", "--root", str(root), "import-mlflow", server, "--model", NAME)
    assert again.returncode == 0, again.stderr
    assert (
        "nothing new to import: 0 versions imported, 3 already imported and unchanged"
        in again.stdout
    )

    package = tmp_path / "package"
    built = batchml("package", "build", "jets@champion", "--root", str(root), "-o", str(package),
                    "--no-bench", "--publish")  # fmt: skip
    assert built.returncode == 0, built.stderr
    import onnxruntime as ort

    session = ort.InferenceSession(package / "model.onnx", providers=["CPUExecutionProvider"])
    [got] = session.run(None, {session.get_inputs()[0].name: made.example})
    with torch.no_grad():
        expected = made.models[2](torch.from_numpy(made.example)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    card = batchml("registry", "--root", str(root), "card", "jets@champion")
    assert card.returncode == 0, card.stderr
    assert "onnx-package: validation against torch" in card.stdout
    assert f"| **run** | {made.run_ids[2]} (mlp-pickle) |" in card.stdout
    assert "| **version tags** | validated=yes |" in card.stdout


# -- bad input, and models without what packaging needs ------------------------------------


@pytest.mark.parametrize("made", ["sqlite"], indirect=True)
def test_bad_sources_exit_2_and_create_nothing(made: MadeSource, tmp_path: Path) -> None:
    root = tmp_path / "new-registry"
    missing_db = tmp_path / "typo.db"
    junk, other = tmp_path / "junk.db", tmp_path / "other.db"
    junk.write_bytes(b"not a database " * 100)
    with contextlib.closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE events (x)")
        db.commit()
    cases = [
        (f"sqlite:///{missing_db}", "no SQLite database at"),
        (str(tmp_path / "no-such-mlruns"), "is not a folder: no MLflow file store there"),
        ("ftp://example.org/mlruns", "is not an MLflow store URI batchml reads"),
        (f"sqlite:///{junk}", "cannot be read as a SQLite database"),
        (f"sqlite:///{other}", "is a SQLite database without MLflow's tables"),
    ]
    for uri, message in cases:
        result = batchml("registry", "--root", str(root), "import-mlflow", uri)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    unknown = batchml("registry", "--root", str(root), "import-mlflow", made.uri, "--model", "taus")
    assert unknown.returncode == 2, unknown.stderr
    assert "has no registered model 'taus'" in unknown.stderr and "'jets'" in unknown.stderr
    renamed = batchml("registry", "--root", str(root), "import-mlflow", made.uri,
                      "--model", "jets=no/slashes")  # fmt: skip
    assert renamed.returncode == 2 and "cannot keep its name in batchml" in renamed.stderr
    assert not root.exists() and not missing_db.exists()
    with contextlib.closing(sqlite3.connect(other)) as db:  # MLflow added no tables to it
        assert [row[0] for row in db.execute("SELECT name FROM sqlite_master")] == ["events"]
    down = batchml(
        "registry", "--root", str(root), "import-mlflow", f"http://127.0.0.1:{_free_port()}"
    )
    assert down.returncode == 1 and "no MLflow server answers at" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr and not root.exists()


@pytest.mark.parametrize("made", ["file"], indirect=True)
def test_a_damaged_store_is_named_and_a_lost_run_is_said(made: MadeSource, tmp_path: Path) -> None:
    store = Path(urlparse(made.uri).path)
    meta = store / "models" / NAME / "version-2" / "meta.yaml"
    kept = meta.read_text()
    meta.write_text("{{{: not yaml")
    registry = Registry(tmp_path / "registry")
    with pytest.raises(RegistryError, match=r"version-2/meta\.yaml") as caught:
        import_mlflow(registry, made.uri)
    assert "damaged" in caught.value.hint
    assert registry.versions(NAME) == []  # the store is read whole before anything is written
    meta.write_text(kept)
    [run] = store.glob(f"*/{made.run_ids[1]}")
    shutil.rmtree(run)  # the run of version 1 deleted for good ('mlflow gc')
    report = import_mlflow(registry, made.uri)
    lost = report.imported[0]
    assert lost.source == "jets/1" and made.run_ids[1] in lost.how["run"]
    assert registry.get(lost.uri).metrics == {}


def test_a_model_without_example_or_signature_keeps_its_weights_only(tmp_path: Path) -> None:
    bare, described = tmp_path / "bare", tmp_path / "described"
    mlp = MLP(seed=7).eval()
    signature = mlflow.models.infer_signature(np.zeros((2, 4), np.float32))
    with warnings.catch_warnings():  # MLflow's notice about the forward's type hints
        warnings.simplefilter("ignore")
        mlflow.pytorch.save_model(mlp, bare, serialization_format="pickle", signature=False)
        mlflow.pytorch.save_model(
            mlp, described, serialization_format="pickle", signature=signature
        )
    none = convert(bare)
    assert none.input_example is None and none.how["input_example"].startswith("none")
    version = Registry(tmp_path / "registry").publish("bare", none.model, files=none.files)
    assert version.manifest["model"]["exported_error"] == "no input example given"
    drawn = convert(described)
    assert drawn.how["input_example"].startswith("synthesised from the MLflow tensor signature")
    [array] = drawn.input_example.values()
    assert array.shape == (8, 4) and array.dtype == np.float32


def test_a_pickled_model_is_kept_as_files_when_mlflow_refuses_pickles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "pickled"
    with warnings.catch_warnings():  # MLflow's notice about pickles
        warnings.simplefilter("ignore")
        mlflow.pytorch.save_model(MLP(seed=3).eval(), folder, serialization_format="pickle")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    refused = convert(folder)
    assert refused.model == folder and refused.files == {}
    assert refused.how["torch"].startswith("not converted: mlflow.pytorch.load_model failed")
    version = Registry(tmp_path / "registry").publish("refused", refused.model, files=refused.files)
    assert "model/MLmodel" in version.files and version.manifest["model"]["kind"] == "files"
