"""Reading in a forked process: the same batches as threads, errors, early exits, cleanup."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from batchml.data import RootDataset
from batchml.data.errors import DataFileNotFoundError
from batchml.data.synthetic import SampleFiles, write_sample

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

FEATURES = ["ht", "mbb", "njet"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleFiles:
    return write_sample(tmp_path_factory.mktemp("sample"), 2000, files_per_class=2)


def dataset(pattern: str, **options: object) -> RootDataset:
    settings: dict[str, object] = {
        "features": FEATURES,
        "target": "label",
        "weights": "weight",
        "batch_size": 64,
        "range_entries": 120,
        "step_size": 50,
        "shuffle_buffer": 200,
        "seed": 3,
        "output": "numpy",
        **options,
    }
    return RootDataset(pattern, **settings)  # type: ignore[arg-type]


def pattern_of(sample: SampleFiles) -> str:
    return str(sample.signal[0].parent / "*.root")


def running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_a_reading_process_yields_what_threads_yield_epoch_after_epoch(
    sample: SampleFiles,
) -> None:
    forked = dataset(pattern_of(sample))
    threads = dataset(pattern_of(sample), prefetch_in="thread")
    pids = set()
    for epoch in (0, 1, 2):
        forked.set_epoch(epoch)
        threads.set_epoch(epoch)
        for a, b in zip(forked, threads, strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)
        pids |= {p.pid for p in forked.stream._processes.values()}
    assert len(pids) == 1 and running(pids.pop())  # one process served every epoch
    stats = forked.stats
    assert stats.events_read == 3 * 2000 and stats.events_out == 3 * 2000  # counted there
    forked.stream.close()
    assert not forked.stream._processes


def test_leaving_an_epoch_early_ends_the_process_and_the_next_epoch_is_whole(
    sample: SampleFiles,
) -> None:
    ds = dataset(pattern_of(sample))
    batches = iter(ds)
    next(batches)
    (process,) = ds.stream._processes.values()
    batches.close()  # type: ignore[attr-defined]
    assert not process.alive and not running(process.pid)
    assert sorted(int(e) for b in ds for e in b.entry) == list(range(2000))
    ds.stream.drop_read_ahead()  # the new process drops its next epoch's first chunk
    ds.set_epoch(1)
    assert sorted(int(e) for b in ds for e in b.entry) == list(range(2000))
    ds.stream.close()


def test_an_error_in_the_reading_process_is_raised_with_its_message(
    sample: SampleFiles, tmp_path: Path
) -> None:
    for path in (*sample.signal, *sample.background):
        shutil.copy(path, tmp_path)
    ds = dataset(str(tmp_path / "*.root"))
    for path in tmp_path.glob("*.root"):
        path.unlink()
    with pytest.raises(DataFileNotFoundError, match=r"no such file: .*\.root") as caught:
        list(ds)
    assert caught.value.hint is not None
    ds.stream.close()


def test_the_reading_process_ends_when_the_training_process_is_killed(
    sample: SampleFiles,
) -> None:
    script = (
        "import os, signal, sys\n"
        "from batchml.data import RootDataset\n"
        f"ds = RootDataset({pattern_of(sample)!r}, features=['ht'], batch_size=10)\n"
        "next(iter(ds))\n"
        "(process,) = ds.stream._processes.values()\n"
        "print(process.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(pid)
