"""Smoke test of the real XRootD test server (tests/services/xrootd.sh).

Every XRootD test relies on this: a file written into BATCHML_XROOTD_DATA is
readable over root://, byte for byte and as a TTree through uproot, and a
missing file is reported as missing rather than as a hang or a generic error.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uproot

pytestmark = [pytest.mark.xrootd, pytest.mark.timeout(120)]

# Client defaults wait up to 8 minutes for a dead server (5 retries of a 120 s
# window); a broken test server must fail these tests in seconds instead.
FAIL_FAST_CLIENT = {
    "ConnectionWindow": 3,
    "ConnectionRetry": 1,
    "RequestTimeout": 30,
    "StreamErrorWindow": 1,
}


def _make_xrootd_client_fail_fast() -> None:
    """Configure the client both ways, since another test module may have loaded it first.

    The XRD_* variables only count if set before the library loads (and reach
    subprocesses); EnvPutInt covers an already loaded library.
    """
    for key, value in FAIL_FAST_CLIENT.items():
        os.environ.setdefault(f"XRD_{key.upper()}", str(value))
    from XRootD import client

    for key in FAIL_FAST_CLIENT:
        client.EnvPutInt(key, int(os.environ[f"XRD_{key.upper()}"]))


_make_xrootd_client_fail_fast()


def remote_url(env: dict[str, str], local: Path) -> str:
    """The export is the folder's absolute path, hence '//' after the port.

    With a single '/' the server sees a relative path and refuses it ([3010]).
    """
    return f"{env['BATCHML_XROOTD_URL'].rstrip('/')}/{local}"


@pytest.fixture
def local_root_file(xrootd_env: dict[str, str]) -> Iterator[Path]:
    """A name of its own in the shared export, removed afterwards, so reruns never collide."""
    path = Path(xrootd_env["BATCHML_XROOTD_DATA"]) / f"smoke-{uuid.uuid4().hex}.root"
    yield path
    path.unlink(missing_ok=True)


def write_events_tree(path: Path) -> dict[str, np.ndarray]:
    """Two extend() calls give two baskets, so a read must stitch chunks together.

    mktree + extend writes a TTree; ``file["events"] = ...`` would write an RNTuple.
    """
    rng = np.random.default_rng(7)
    chunks = [
        {
            "pt": rng.normal(50.0, 10.0, size).astype(np.float32),
            "label": rng.integers(0, 3, size, dtype=np.int32),
        }
        for size in (600, 400)
    ]
    with uproot.recreate(path) as out:
        tree = out.mktree("events", {name: array.dtype for name, array in chunks[0].items()})
        for chunk in chunks:
            tree.extend(chunk)
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}


def test_uproot_reads_ttree_over_root_protocol(
    xrootd_env: dict[str, str], local_root_file: Path
) -> None:
    expected = write_events_tree(local_root_file)

    url = remote_url(xrootd_env, local_root_file)
    with uproot.open(url, handler=uproot.source.xrootd.XRootDSource) as remote:
        tree = remote["events"]
        assert isinstance(tree, uproot.TTree)
        assert tree.num_entries == 1000
        got = tree.arrays(library="np")

    assert set(got) == set(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype
        np.testing.assert_array_equal(got[name], array)


def test_raw_bytes_over_root_protocol_match_local_file(
    xrootd_env: dict[str, str], local_root_file: Path
) -> None:
    from XRootD import client

    write_events_tree(local_root_file)
    local_bytes = local_root_file.read_bytes()

    remote = client.File()
    status, _ = remote.open(remote_url(xrootd_env, local_root_file))
    assert status.ok, status.message
    try:
        # Ask for more than the file holds: a correct server returns exactly the file.
        status, data = remote.read(0, len(local_bytes) + 4096)
    finally:
        remote.close()
    assert status.ok, status.message
    assert data == local_bytes


def test_missing_file_raises_file_not_found(xrootd_env: dict[str, str]) -> None:
    missing = Path(xrootd_env["BATCHML_XROOTD_DATA"]) / f"missing-{uuid.uuid4().hex}.root"

    with pytest.raises(FileNotFoundError):
        uproot.open(remote_url(xrootd_env, missing), handler=uproot.source.xrootd.XRootDSource)
