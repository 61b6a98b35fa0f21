"""RootDataset on local files: every entry once per epoch, seeded shuffles, split, cut, jagged;
reading ahead in threads and in a forked process."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import awkward as ak
import numpy as np
import psutil
import pytest
import torch
import uproot

from batchml._compat.uproot import inflate_library, set_inflate_library
from batchml.data import (
    BatchOptions,
    ReadOptions,
    RootDataset,
    Selection,
    StreamOptions,
)
from batchml.data.epoch_start import EpochStart
from batchml.data.errors import DataFileNotFoundError
from batchml.demo.sample import SampleFiles, write_sample
from batchml.errors import InvalidValue

FEATURES = ["ht", "mbb", "njet"]
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleFiles:
    """4 files of 500 entries: small, but several files, ranges and batches per worker."""
    return write_sample(tmp_path_factory.mktemp("sample"), 2000, files_per_class=2)


def dataset(sample: SampleFiles | Path, **options: object) -> RootDataset:
    """The sample's files (or those of a folder holding a copy) with small ranges and batches."""
    folder = sample if isinstance(sample, Path) else sample.signal[0].parent
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
    return RootDataset(str(folder / "*.root"), **settings)  # type: ignore[arg-type]


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


def settled(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether ``condition`` holds within ``seconds`` (what other threads or processes finish)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_epochs_read_ahead_repeated_skipped_or_dropped_are_each_whole_and_counted_once(
    sample: SampleFiles,
) -> None:
    # in threads: a reading process runs the same code
    ds = dataset(sample, output="numpy", prefetch_in="thread")
    cold = dataset(sample, output="numpy", prefetch_in="thread")
    list(ds)  # epoch 0: once read, the first chunk of epoch 1 is read ahead
    ds.set_epoch(1)
    cold.set_epoch(1)
    for a, b in zip(ds, cold, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    cold.close()
    assert ds.stats.events_read == 4000  # the chunk read ahead is counted in its own epoch
    # an epoch repeated without set_epoch, one skipped: a chunk read ahead for an
    # epoch that does not come is not used
    for epoch in (1, 1, 7, 7, 3):
        ds.set_epoch(epoch)
        assert sorted(entries_of(ds)) == list(range(2000))
    assert ds.stats.events_read == 7 * 2000
    ds.stream.drop_read_ahead()
    assert sorted(entries_of(ds)) == list(range(2000))
    assert ds.stats.events_read == 8 * 2000  # the dropped chunk was read again
    ds.close()
    assert sorted(entries_of(ds)) == list(range(2000))  # a closed dataset reads afresh
    ds.close()


class Opened:
    """What a read ahead holds: closed once."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_a_start_read_ahead_is_taken_or_closed_once_and_a_failed_one_is_none() -> None:
    read = Opened()
    taken = EpochStart(3, lambda: read)
    assert taken.epoch == 3 and taken.take() is read and read.closed == 0
    taken.discard()  # after the read ended: closed now
    assert read.closed == 1

    release, late = threading.Event(), Opened()

    def slow() -> Opened:
        release.wait(10)
        return late

    pending = EpochStart(4, slow)
    pending.discard()  # before the read ends: what it reads is closed when it does
    release.set()
    assert pending.take() is None and settled(lambda: late.closed == 1)

    def failing() -> Opened:
        raise OSError("the server went away")

    assert EpochStart(6, failing).take() is None  # the epoch reads that chunk itself


@needs_fork
def test_a_start_belongs_to_the_process_that_made_it() -> None:
    read = Opened()
    start = EpochStart(1, lambda: read)
    start.take()
    pid = os.fork()
    if pid == 0:  # a DataLoader worker forked afterwards: neither takes nor closes it
        ignored = start.take() is None
        start.discard()
        os._exit(0 if ignored and read.closed == 0 else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    start.discard()
    assert read.closed == 1


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


def test_options_objects_make_the_dataset_the_keywords_make(sample: SampleFiles) -> None:
    files = str(sample.signal[0].parent / "*.root")
    options = StreamOptions(
        files,
        Selection(features=FEATURES, target="label", weights="weight"),
        reading=ReadOptions(step_size=50, prefetch_in="thread"),
        batching=BatchOptions(batch_size=64, range_entries=120, shuffle_buffer=200, seed=3),
    )
    by_options = RootDataset.from_options(options, output="numpy")
    by_keywords = dataset(sample, output="numpy", prefetch_in="thread")
    for a, b in zip(by_options, by_keywords, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    validation = replace(options, selection=replace(options.selection, split=("validation", 0.5)))
    train = replace(options, selection=replace(options.selection, split=("train", 0.5)))
    sides = [entries_of(RootDataset.from_options(o, output="numpy")) for o in (validation, train)]
    assert sorted(sides[0] + sides[1]) == list(range(2000)) and all(sides)
    by_options.close()
    by_keywords.close()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: ReadOptions(prefetch_in="fork"), "prefetch_in='fork' is unknown"),  # type: ignore[arg-type]
        (lambda: ReadOptions(prefetch="much"), "is not a size"),
        (lambda: BatchOptions(range_entries=0), "sizes must be positive"),
        (lambda: Selection(features=["ht"], split=("test", 0.5)), "split=('test', 0.5)"),
    ],
)
def test_a_bad_options_object_is_refused_when_made(make: Callable[[], object], words: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        make()
    assert words in caught.value.message and caught.value.hint


def test_zlib_baskets_are_inflated_by_isal_to_the_same_values(sample: SampleFiles) -> None:
    set_inflate_library("zlib")
    try:
        file = uproot.open(sample.signal[0])
        assert file.file.compression.name == "ZLIB"
        by_zlib = file["events"].arrays(FEATURES, library="np")
        dataset(sample)
        assert inflate_library() == "isal"
        by_isal = uproot.open(sample.signal[0])["events"].arrays(FEATURES, library="np")
    finally:
        set_inflate_library("isal")
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


def running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped has ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def children() -> set[int]:
    """The processes this one started that still run."""
    return {child.pid for child in psutil.Process().children() if running(child.pid)}


@needs_fork
def test_a_reading_process_yields_what_threads_yield_epoch_after_epoch(
    sample: SampleFiles,
) -> None:
    forked = dataset(sample, output="numpy")
    threads = dataset(sample, output="numpy", prefetch_in="thread")
    before = children()
    started = set()
    for epoch in (0, 1, 2):
        forked.set_epoch(epoch)
        threads.set_epoch(epoch)
        for a, b in zip(forked, threads, strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)
        started |= children() - before
    assert len(started) == 1  # one process served every epoch, and still runs
    stats = forked.stats
    assert stats.events_read == 3 * 2000 and stats.events_out == 3 * 2000  # counted there
    forked.close()
    assert not running(started.pop())


@needs_fork
def test_one_feature_keeps_its_column_in_a_process_as_in_threads(sample: SampleFiles) -> None:
    for way in ("process", "thread"):
        batch = next(iter(dataset(sample, features=["ht"], prefetch_in=way)))
        assert batch.features.shape == (64, 1), way


@needs_fork
def test_two_iterations_at_once_each_get_a_process_and_every_entry(sample: SampleFiles) -> None:
    ds = dataset(sample, output="numpy")
    before = children()
    first, second = iter(ds), iter(ds)
    seen = [[int(e) for e in next(first).entry], [int(e) for e in next(second).entry]]
    assert len(children() - before) == 2
    seen[0] += [int(e) for b in first for e in b.entry]
    seen[1] += [int(e) for b in second for e in b.entry]
    assert sorted(seen[0]) == sorted(seen[1]) == list(range(2000))
    ds.close()
    assert not children() - before


@needs_fork
def test_leaving_an_epoch_early_ends_the_process_and_the_next_epoch_is_whole(
    sample: SampleFiles,
) -> None:
    ds = dataset(sample, output="numpy")
    before = children()
    batches = iter(ds)
    next(batches)
    (reader,) = children() - before
    batches.close()  # type: ignore[attr-defined]
    assert not running(reader)
    assert sorted(int(e) for b in ds for e in b.entry) == list(range(2000))
    ds.stream.drop_read_ahead()  # the new process drops its next epoch's first chunk
    ds.set_epoch(1)
    assert sorted(int(e) for b in ds for e in b.entry) == list(range(2000))
    ds.close()


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
    ds.close()


def read_a_batch_and_die(files: str, readers: multiprocessing.SimpleQueue[set[int]]) -> None:
    """A training process that starts reading, says which processes it started, and is killed."""
    ds = RootDataset(files, features=["ht"], batch_size=10)
    batches = iter(ds)  # (held: an iteration left early would end the process itself)
    next(batches)
    readers.put(children())
    os.kill(os.getpid(), signal.SIGKILL)


@needs_fork
def test_the_reading_process_ends_when_the_training_process_is_killed(
    sample: SampleFiles,
) -> None:
    context = multiprocessing.get_context("spawn")
    readers: multiprocessing.SimpleQueue[set[int]] = context.SimpleQueue()
    files = str(sample.signal[0].parent / "*.root")
    training = context.Process(target=read_a_batch_and_die, args=(files, readers))
    training.start()
    training.join(timeout=120)
    assert training.exitcode == -signal.SIGKILL
    started = readers.get()
    assert len(started) == 1
    assert settled(lambda: not any(running(pid) for pid in started))


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
