"""RootDataset on local files: every entry once per epoch, seeded shuffles, split, cut, jagged;
reading ahead in threads and in a forked process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

from batchml.data import RootDataset
from batchml.data.errors import DataFileNotFoundError
from batchml.data.synthetic import SampleFiles, write_sample
from batchml.errors import InvalidValue

FEATURES = ["ht", "mbb", "njet"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleFiles:
    """4 files of 500 entries: small, but several files, ranges and batches per worker."""
    return write_sample(tmp_path_factory.mktemp("sample"), 2000, files_per_class=2)


def dataset(sample: SampleFiles, **options: object) -> RootDataset:
    settings: dict[str, object] = {
        "features": FEATURES,
        "target": "label",
        "weights": "weight",
        "batch_size": 64,
        "range_entries": 120,
        "step_size": 50,
        "shuffle_buffer": 200,
        "seed": 3,
        **options,
    }
    return RootDataset(str(sample.signal[0].parent / "*.root"), **settings)  # type: ignore[arg-type]


def entries_of(batches: Iterable[object]) -> list[int]:
    return [int(e) for batch in batches for e in batch.entry]  # type: ignore[attr-defined]


def all_columns(sample: SampleFiles) -> dict[str, np.ndarray]:
    """The whole sample read plainly with uproot, in global entry order."""
    files = sorted([*sample.signal, *sample.background])
    arrays = [uproot.open(f)["events"].arrays(library="ak") for f in files]
    return ak.concatenate(arrays)


@pytest.mark.parametrize("workers", [0, 2])
def test_every_entry_exactly_once_per_epoch_for_workers_and_ranks(
    sample: SampleFiles, workers: int
) -> None:
    for epoch in (0, 1):
        seen: list[int] = []
        for rank in (0, 1):
            ds = dataset(sample, rank=rank, world_size=2)
            ds.set_epoch(epoch)
            seen += entries_of(ds.loader(num_workers=workers))
        assert sorted(seen) == list(range(2000))


def test_same_seed_same_order_other_seed_or_epoch_other_order(sample: SampleFiles) -> None:
    first = entries_of(dataset(sample))
    assert entries_of(dataset(sample)) == first
    assert entries_of(dataset(sample, seed=4)) != first
    later = dataset(sample)
    later.set_epoch(1)
    assert entries_of(later) != first
    assert sorted(first) == list(range(2000))


def test_split_is_per_entry_and_independent_of_layout(sample: SampleFiles) -> None:
    train = entries_of(dataset(sample, split=("train", 0.75)))
    train_other_layout = entries_of(
        dataset(sample, split=("train", 0.75), seed=9, range_entries=37).loader(num_workers=2)
    )
    validation = entries_of(dataset(sample, split=("validation", 0.75)))
    assert sorted(train) == sorted(train_other_layout)
    assert sorted(train + validation) == list(range(2000))
    assert 0.65 < len(train) / 2000 < 0.85


def test_cut_keeps_the_entries_numpy_keeps(sample: SampleFiles) -> None:
    columns = all_columns(sample)
    expected = np.flatnonzero((columns["njet"] >= 5) & ~(columns["ht"] < 300))
    got = entries_of(dataset(sample, cut="njet >= 5 and not ht < 300"))
    assert sorted(got) == expected.tolist()


def test_features_target_weight_and_padded_jagged_match_the_file(sample: SampleFiles) -> None:
    columns = all_columns(sample)
    ds = dataset(sample, jagged={"jet_pt": 4}, pad_value=-1.0)
    assert ds.columns == (*FEATURES, "jet_pt[0]", "jet_pt[1]", "jet_pt[2]", "jet_pt[3]")
    batch = next(iter(ds))
    assert batch.features.dtype == torch.float32 and batch.features.shape == (64, 7)
    rows = batch.entry.numpy()
    jets = ak.to_numpy(ak.fill_none(ak.pad_none(columns["jet_pt"][rows], 4, clip=True), -1.0))
    expected = np.column_stack([*(ak.to_numpy(columns[f][rows]) for f in FEATURES), jets])
    np.testing.assert_allclose(batch.features.numpy(), expected.astype(np.float32))
    np.testing.assert_array_equal(batch.target.numpy(), ak.to_numpy(columns["label"][rows]))
    np.testing.assert_array_equal(batch.weight.numpy(), ak.to_numpy(columns["weight"][rows]))


@pytest.mark.parametrize("buffer", [50, 200])
def test_reading_ahead_changes_nothing_and_rows_stay_whole(
    sample: SampleFiles, buffer: int
) -> None:
    # buffer 50 = step_size: each chunk replaces the whole buffer
    columns = all_columns(sample)
    ahead = list(dataset(sample, shuffle_buffer=buffer, output="numpy"))
    inline = list(dataset(sample, shuffle_buffer=buffer, output="numpy", prefetch=None))
    assert len(ahead) == len(inline)
    for a, b in zip(ahead, inline, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    rows = np.concatenate([b.entry for b in ahead])
    assert sorted(rows.tolist()) == list(range(2000))
    features = np.concatenate([b.features for b in ahead])
    expected = np.column_stack([ak.to_numpy(columns[f][rows]) for f in FEATURES])
    np.testing.assert_allclose(features, expected.astype(np.float32))


def test_next_epoch_begins_with_a_chunk_read_ahead_and_yields_the_same(
    sample: SampleFiles,
) -> None:
    # in threads, to look at the reader's state (a reading process runs the same code)
    ds = dataset(sample, output="numpy", prefetch_in="thread")
    cold = dataset(sample, output="numpy", prefetch_in="thread")
    list(ds)  # epoch 0: once read, the first chunk of epoch 1 is read, its file kept open
    start = ds.stream._starts[(0, 1)]
    first = start.take()
    assert start.epoch == 1 and first is not None and first.trees._open
    ds.set_epoch(1)
    cold.set_epoch(1)
    for a, b in zip(ds, cold, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert ds.stats.events_read == 4000  # the chunk read ahead is counted in its own epoch
    assert ds.stream._starts[(0, 1)].epoch == 2
    list(ds)  # epoch 1 again, without set_epoch: the start of 2 goes unused and is closed
    unused = ds.stream._starts[(0, 1)]
    assert unused.epoch == 1  # repeating epochs: the same one is expected next
    ds.set_epoch(7)
    held = unused.take()
    assert held is not None
    next(iter(ds))
    assert not held.trees._open and (0, 1) not in ds.stream._starts
    list(ds)  # epoch 7 again: its start is dropped, its open files are kept
    files = ds.stream._starts[(0, 1)].take()
    assert files is not None
    ds.stream.drop_read_ahead()
    assert not ds.stream._starts and ds.stream._kept[(0, 1)] is files.trees
    reads = ds.stats.events_read
    assert sorted(int(e) for b in ds for e in b.entry) == list(range(2000))
    assert ds.stats.events_read - reads == 2000  # the dropped chunk was read again
    assert not ds.stream._kept and files.trees._open  # and its files used
    ds.stream._starts[(0, 1)].take()  # (close does not wait for a read under way)
    ds.stream.close()
    assert not ds.stream._starts and not files.trees._open
    without = dataset(sample, output="numpy", prefetch=None, prefetch_in="thread")
    list(without)
    assert not without.stream._starts


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policy")
def test_reading_threads_run_at_the_chosen_priority(sample: SampleFiles) -> None:
    def policies(priority: str) -> set[int]:
        ds = dataset(
            sample,
            reader_priority=priority,
            prefetch_in="thread",
            decompression_threads=1,
            step_size=10,
        )
        before = set(threading.enumerate())
        batches = iter(ds)
        next(batches)
        readers = [
            t
            for t in set(threading.enumerate()) - before
            if t.name.startswith(("batchml-prefetch", "ThreadPoolExecutor"))
        ]
        found = {os.sched_getscheduler(t.native_id or 0) for t in readers if t.is_alive()}
        batches.close()
        return found

    assert policies("idle") == {os.SCHED_IDLE}  # the decompression pool inherits it
    assert policies("normal") == {os.SCHED_OTHER}
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the consumer keeps its own
    with pytest.raises(InvalidValue, match=r"(?s)reader_priority='low'.*idle, normal"):
        dataset(sample, reader_priority="low")


def test_zlib_baskets_are_inflated_by_isal_to_the_same_values(sample: SampleFiles) -> None:
    inflate = uproot.compression._decompress_ZLIB
    inflate.library = "zlib"
    try:
        file = uproot.open(sample.signal[0])
        assert file.file.compression.name == "ZLIB"
        by_zlib = file["events"].arrays(FEATURES, library="np")
        dataset(sample)
        assert inflate.library == "isal"
        by_isal = uproot.open(sample.signal[0])["events"].arrays(FEATURES, library="np")
    finally:
        inflate.library = "isal"
    for name in FEATURES:
        np.testing.assert_array_equal(by_isal[name], by_zlib[name])


def test_numpy_output_and_stats_count_what_was_read(sample: SampleFiles) -> None:
    ds = dataset(sample, output="numpy", split=("train", 0.5))
    loader = ds.loader()
    kept = sum(len(b.entry) for b in loader)
    stats = loader.stats
    assert isinstance(next(iter(ds)).features, np.ndarray)
    assert stats.events_read == 2000 and stats.events_out == kept
    assert stats.bytes_read > 0 and stats.batches == -(-kept // 64)
    assert 0.0 <= stats.wait_fraction <= 1.0 and "events read" in stats.summary()


def test_rntuple_reads_like_a_ttree(tmp_path: Path) -> None:
    path = tmp_path / "rn.root"
    with uproot.recreate(path) as out:
        out["ntuple"] = {"x": np.arange(300, dtype=np.float32), "y": np.ones(300, np.int32)}
    ds = RootDataset(str(path), "ntuple", features=["x"], target="y", batch_size=100)
    assert sorted(entries_of(ds)) == list(range(300))


def test_importing_batchml_data_does_not_import_torch() -> None:
    code = "import sys, batchml.data; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@needs_fork
def test_a_reading_process_yields_what_threads_yield_epoch_after_epoch(
    sample: SampleFiles,
) -> None:
    forked = dataset(sample, output="numpy")
    threads = dataset(sample, output="numpy", prefetch_in="thread")
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
    (process,) = forked.stream._processes.values()
    forked.close()
    assert not forked.stream._processes and not running(process.pid)


@needs_fork
def test_one_feature_keeps_its_column_in_a_process_as_in_threads(sample: SampleFiles) -> None:
    for way in ("process", "thread"):
        batch = next(iter(dataset(sample, features=["ht"], prefetch_in=way)))
        assert batch.features.shape == (64, 1), way


@needs_fork
def test_two_iterations_at_once_each_get_a_process_and_every_entry(sample: SampleFiles) -> None:
    ds = dataset(sample, output="numpy")
    first, second = iter(ds), iter(ds)
    seen = [[int(e) for e in next(first).entry], [int(e) for e in next(second).entry]]
    seen[0] += [int(e) for b in first for e in b.entry]
    seen[1] += [int(e) for b in second for e in b.entry]
    assert sorted(seen[0]) == sorted(seen[1]) == list(range(2000))
    ds.stream.close()


@needs_fork
def test_leaving_an_epoch_early_ends_the_process_and_the_next_epoch_is_whole(
    sample: SampleFiles,
) -> None:
    ds = dataset(sample, output="numpy")
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


@needs_fork
def test_an_error_in_the_reading_process_is_raised_with_its_message(
    sample: SampleFiles, tmp_path: Path
) -> None:
    for path in (*sample.signal, *sample.background):
        shutil.copy(path, tmp_path)
    ds = RootDataset(str(tmp_path / "*.root"), features=FEATURES)
    for path in tmp_path.glob("*.root"):
        path.unlink()
    with pytest.raises(DataFileNotFoundError, match=r"no such file: .*\.root") as caught:
        list(ds)
    assert caught.value.hint is not None
    ds.stream.close()


@needs_fork
def test_the_reading_process_ends_when_the_training_process_is_killed(
    sample: SampleFiles,
) -> None:
    files = str(sample.signal[0].parent / "*.root")
    script = (
        "import os, signal, sys\n"
        "from batchml.data import RootDataset\n"
        f"ds = RootDataset({files!r}, features=['ht'], batch_size=10)\n"
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


@pytest.fixture(scope="module")
def signal_then_background(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One file: 10,000 signal events, then 10,000 background events (as often written)."""
    path = tmp_path_factory.mktemp("ordered") / "ordered.root"
    n = 10_000
    with uproot.recreate(path) as out:
        tree = out.mktree("events", {"x": np.float32, "label": np.int32})
        for label in (1, 0):
            tree.extend({"x": np.arange(n, dtype=np.float32), "label": np.full(n, label, np.int32)})
    return str(path)


def test_rows_are_shuffled_by_default_differently_each_epoch_and_the_same_per_seed(
    signal_then_background: str,
) -> None:
    def epoch(seed: int, number: int) -> list[np.ndarray]:
        ds = RootDataset(
            signal_then_background, features=["x"], target="label", batch_size=256, seed=seed,
            output="numpy",
        )  # fmt: skip
        ds.set_epoch(number)
        batches = list(ds)
        ds.close()
        return batches

    first = epoch(seed=5, number=0)
    signal = [float(np.mean(b.target)) for b in first[:-1]]
    assert min(signal) > 0.25 and max(signal) < 0.75  # each batch holds both classes
    order = np.concatenate([b.entry for b in first])
    assert sorted(order) == list(range(20_000))
    again = np.concatenate([b.entry for b in epoch(seed=5, number=0)])
    np.testing.assert_array_equal(order, again)
    assert not np.array_equal(order, np.concatenate([b.entry for b in epoch(seed=5, number=1)]))
    assert not np.array_equal(order, np.concatenate([b.entry for b in epoch(seed=6, number=0)]))
