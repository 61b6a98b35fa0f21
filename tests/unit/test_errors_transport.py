"""batchml's errors cross process boundaries whole: pickled (dask, the reading process) and
through torch's DataLoader workers, which rebuild an exception from its traceback text."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot

from batchml.data import DataFileNotFoundError, RootDataset
from batchml.data.errors import UnreadableFileError
from batchml.errors import BatchmlError, ConfigError, FieldProblem, InvalidValue
from batchml.registry.registry_errors import NotFound


@pytest.mark.parametrize(
    "error",
    [
        DataFileNotFoundError("no such file: a.root", hint="check the name: ls /data"),
        UnreadableFileError("a.root is truncated", hint="copy it again"),
        InvalidValue("cut 'x &' is not an expression", hint="write 'x > 1'"),
        NotFound("no model 'tth'", hint="batchml registry list"),
        ConfigError("site.yaml", [FieldProblem("gpus", "must be >= 0", "write gpus: 1")]),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_kind_survives_pickling_with_its_hint_and_fields(error: BatchmlError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.message, copy.hint, copy.exit_code, str(copy)) == (
        error.message, error.hint, error.exit_code, str(error),
    )  # fmt: skip
    assert vars(copy) == vars(error)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 baskets of 500 entries; the 11th basket of 'x' does not inflate (the first is fine)."""
    path = tmp_path_factory.mktemp("workers") / "damaged.root"
    with uproot.recreate(path) as out:
        tree = out.mktree("events", {"x": np.float32, "y": np.int32})
        for i in range(20):
            start = i * 500
            tree.extend(
                {"x": np.arange(start, start + 500, dtype=np.float32), "y": np.zeros(500, np.int32)}
            )
    data = bytearray(path.read_bytes())
    with uproot.open(path) as file:
        branch = file["events"]["x"]
        at = int(branch.member("fBasketSeek")[10]) + branch.basket_key(10).fKeylen + 9
    for i in range(at + 4, at + 80):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def test_an_error_in_a_dataloader_worker_arrives_as_raised(damaged: Path) -> None:
    dataset = RootDataset(str(damaged), features=["x", "y"], batch_size=100, range_entries=2500)
    with pytest.raises(BatchmlError) as in_process:
        list(dataset.loader(num_workers=0))
    with pytest.raises(BatchmlError) as in_workers:
        list(dataset.loader(num_workers=2))
    for caught in (in_process, in_workers):
        assert type(caught.value) is UnreadableFileError
        assert "does not decompress" in caught.value.message
        assert "\n" not in caught.value.message
        assert caught.value.hint == in_process.value.hint and caught.value.hint


def test_data_bench_with_workers_prints_one_error_line_and_its_hint(damaged: Path) -> None:
    command = [sys.executable, "-m", "batchml.cli", "--no-color", "data", "bench", str(damaged)]
    for workers in ("0", "2"):
        run = subprocess.run(
            [*command, "--features", "x", "y", "--workers", workers],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2, run.stderr
        assert len(lines) == 2, run.stderr
        assert lines[0].startswith("error: a basket of") and lines[1].startswith("hint: copy it")


def test_an_error_caused_by_an_unpicklable_one_crosses_with_tblib_installed(damaged: Path) -> None:
    """As in a dask worker, where distributed pickles every exception's cause too."""
    script = (
        "from batchml.data import RootDataset\n"
        "import tblib.pickling_support; tblib.pickling_support.install()\n"
        f"ds = RootDataset({str(damaged)!r}, features=['x'], batch_size=100)\n"
        "for workers in (2, 0):\n"
        "    try:\n"
        "        list(ds.loader(num_workers=workers))\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__, exc.hint is not None, '\\n' in exc.message)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.stdout.split("\n")[:2] == ["UnreadableFileError True False"] * 2, run.stderr
