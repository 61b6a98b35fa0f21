"""RootDataset against the real XRootD server: both step sizes, wildcards, a server restart
mid-epoch, the node-local cache, and the failures a batch job meets (each named by URL)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from batchml.data import (
    DataError,
    DataFileNotFoundError,
    DataPermissionError,
    DataUnreachableError,
    Retry,
    RootDataset,
    configure_client,
)
from batchml.data.errors import UnreadableFileError
from batchml.demo.sample import write_sample
from tests.unit.nano_files import nano_events, write_nano

pytestmark = [pytest.mark.xrootd, pytest.mark.timeout(120)]

SERVICE = Path(__file__).resolve().parents[1] / "services" / "xrootd.sh"
FAST_RETRY = Retry(attempts=8, first_delay=0.2, max_delay=2.0, deadline=60.0)


@pytest.fixture(scope="module", autouse=True)
def fail_fast_client() -> None:
    """Seconds, not the client's minutes: a restart must be noticed and retried quickly."""
    configure_client(ConnectionWindow=2, ConnectionRetry=1, RequestTimeout=20, StreamErrorWindow=1)


@pytest.fixture(scope="module")
def folder(xrootd_env: dict[str, str]) -> Iterator[Path]:
    """4 files x 500 entries in a folder of its own inside the export."""
    path = Path(xrootd_env["BATCHML_XROOTD_DATA"]) / f"data-{uuid.uuid4().hex}"
    write_sample(path, 2000, files_per_class=2)
    for file in path.iterdir():
        file.chmod(0o644)
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def url(env: dict[str, str], local: Path | str) -> str:
    return f"{env['BATCHML_XROOTD_URL'].rstrip('/')}/{local}"


def remote(env: dict[str, str], folder: Path, **options: object) -> RootDataset:
    settings: dict[str, object] = {
        "features": ["ht", "mbb"],
        "target": "label",
        "batch_size": 100,
        "range_entries": 100,
        "step_size": 50,
        "retry": FAST_RETRY,
        **options,
    }
    return RootDataset(url(env, folder / "*.root"), **settings)  # type: ignore[arg-type]


def entries(ds: RootDataset) -> list[int]:
    return [int(e) for batch in ds.loader() for e in batch.entry]


@pytest.mark.parametrize("step_size", [50, "20 kB"])
def test_both_step_size_forms_read_every_entry(
    xrootd_env: dict[str, str], folder: Path, step_size: object
) -> None:
    ds = remote(xrootd_env, folder, step_size=step_size)
    assert [u.rsplit("/", 1)[1] for u in ds.stream.urls] == sorted(p.name for p in folder.iterdir())
    assert sorted(entries(ds)) == list(range(2000))
    assert ds.stats.bytes_read > 0


def test_server_restart_mid_epoch_loses_and_repeats_nothing(
    xrootd_env: dict[str, str], folder: Path
) -> None:
    ds = remote(xrootd_env, folder, prefetch="4 kB", shuffle_buffer=0, seed=2)
    batches = iter(ds.loader())
    seen = [int(e) for e in next(batches).entry]
    subprocess.run(["bash", str(SERVICE), "restart"], check=True, capture_output=True)
    seen += [int(e) for batch in batches for e in batch.entry]
    assert len(seen) == len(set(seen)) == 2000
    assert set(seen) == set(range(2000))
    # between epochs: the next epoch's first chunk was read ahead, its file is kept
    # open, and the server restarts under it
    subprocess.run(["bash", str(SERVICE), "restart"], check=True, capture_output=True)
    ds.set_epoch(1)
    again = [int(e) for batch in ds.loader() for e in batch.entry]
    assert sorted(again) == list(range(2000))


def test_node_local_cache_is_reused_and_verified(
    xrootd_env: dict[str, str], folder: Path, tmp_path: Path
) -> None:
    # without prefetch: no next epoch's first chunk is read (and counted) behind the test
    options = {"cache_dir": str(tmp_path), "range_entries": 1000, "prefetch": None}
    first = remote(xrootd_env, folder, **options)
    assert sorted(entries(first)) == list(range(2000))
    cache = first.stream.cache
    assert cache is not None and (cache.copies, cache.hits) == (4, 0)
    stats = first.stats  # the copies' bytes are read from the cache, not the server
    assert (stats.cache_copies, stats.bytes_from) == (4, {"cache": stats.bytes_read})

    second = remote(xrootd_env, folder, **options)
    victim = second.stream.cache.path_for(second.stream.urls[0])  # type: ignore[union-attr]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content: only the checksum sees it
    victim.write_bytes(bytes(data))
    assert sorted(entries(second)) == list(range(2000))
    assert (second.stream.cache.copies, second.stream.cache.hits) == (1, 3)  # type: ignore[union-attr]
    assert (second.stats.cache_copies, second.stats.cache_hits) == (1, 3)


def test_missing_remote_file_names_the_url(xrootd_env: dict[str, str], folder: Path) -> None:
    missing = url(xrootd_env, folder / "absent.root")
    with pytest.raises(DataFileNotFoundError, match=r"absent\.root.*branches ht"):
        RootDataset(missing, features=["ht"])
    with pytest.raises(DataFileNotFoundError, match=r"no file on .* matches"):
        RootDataset(url(xrootd_env, folder / "zzz*.root"), features=["ht"])


def test_unreadable_remote_file_is_a_permission_error(
    xrootd_env: dict[str, str], folder: Path
) -> None:
    private = folder / "private.root"
    shutil.copy(next(folder.glob("signal_*.root")), private)
    private.chmod(0o600)  # owned by root: the server's user may not read it
    try:
        with pytest.raises(DataPermissionError, match=r"private\.root.*branches ht"):
            RootDataset(url(xrootd_env, private), features=["ht"])
    finally:
        private.unlink()


def test_unreachable_host_fails_within_the_retry_bounds(folder: Path) -> None:
    assert os.environ["XRD_CONNECTIONWINDOW"] == "2"
    closed = f"root://127.0.0.1:1/{folder}/signal_000.root"
    with pytest.raises(DataUnreachableError, match=r"127\.0\.0\.1:1.*branches ht"):
        RootDataset(closed, features=["ht"], retry=Retry(attempts=2, first_delay=0.1))


def placed(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    path.chmod(0o644)
    return path


def test_each_bad_remote_file_says_what_it_is(xrootd_env: dict[str, str], folder: Path) -> None:
    whole = next(folder.glob("signal_*.root")).read_bytes()
    cases = {
        placed(folder, "truncated.bin", whole[: len(whole) // 3]): (
            UnreadableFileError,
            f"is truncated: {len(whole) // 3:,} bytes where its ROOT header says {len(whole):,}",
            "copy it again",
        ),
        placed(folder, "notes.bin", b"hello"): (
            UnreadableFileError,
            "is not a ROOT file: it starts with b'hell'",
            "ROOT files only",
        ),
        folder / "sub.root": (UnreadableFileError, "is a folder, not a ROOT file", "/*.root"),
        folder / "absent.bin": (DataFileNotFoundError, "no such file", "xrdfs"),
    }
    (folder / "sub.root").mkdir(mode=0o755)
    for path, (kind, message, hint) in cases.items():
        with pytest.raises(DataError) as caught:
            RootDataset(url(xrootd_env, path), features=["ht"])
        assert type(caught.value) is kind, caught.value
        assert message in caught.value.message and hint in (caught.value.hint or "")
        assert "\n" not in str(caught.value).replace("\n  hint: ", " ")


def test_one_slash_after_the_port_is_named_as_the_problem(
    xrootd_env: dict[str, str], folder: Path
) -> None:
    base = xrootd_env["BATCHML_XROOTD_URL"].rstrip("/")
    one_slash = f"{base}{next(folder.glob('signal_*.root'))}"  # root://host:port/tmp/...
    assert "//" not in one_slash.split("://", 1)[1]
    with pytest.raises(DataFileNotFoundError) as caught:
        RootDataset(one_slash, features=["ht"])
    assert "is relative (one '/' after the port)" in caught.value.message
    assert (
        caught.value.hint
        == f"write two slashes after the port: {url(xrootd_env, one_slash.split(base)[1])}"
    )


def test_inspect_of_an_unreachable_server_gives_up_within_the_batch_timeouts() -> None:
    """Not the client's 480 s: inspect applies the batch settings that bench and training use."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("XRD_")}
    command = [sys.executable, "-m", "batchml.cli", "--no-color", "data", "inspect"]
    run = subprocess.run(
        [*command, "root://127.0.0.1:1//data/a.root"],
        env=environment, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 2, run.stderr
    assert lines[0].startswith("error: cannot reach the server for root://127.0.0.1:1//data/a.root")


def test_an_rntuple_over_xrootd_gives_the_batches_of_its_ttree(
    xrootd_env: dict[str, str], folder: Path
) -> None:
    """Fields read in a pool of 2 over one XRootD connection; steps that cut clusters."""
    events = nano_events(1500, seed=8)
    batches = {}
    for kind in ("ttree", "rntuple"):
        path = write_nano(folder / f"nano-{kind}.root", events, rntuple=kind == "rntuple")
        path.chmod(0o644)
        ds = RootDataset(
            url(xrootd_env, path), "Events", features=["HT", "MET", "i16"], jagged={"Jet_eta": 2},
            target="flag", cut="any(Jet_pt > 20)", step_size=120, range_entries=600,
            decompression_threads=2, batch_size=100, seed=3, output="numpy",
        )  # fmt: skip
        batches[kind] = list(ds)
        ds.close()
    assert sum(len(b.entry) for b in batches["rntuple"]) > 500
    for tree, ntuple in zip(batches["ttree"], batches["rntuple"], strict=True):
        for a, b in zip(tree, ntuple, strict=True):
            np.testing.assert_array_equal(a, b)
