"""The optional node-local cache: a remote file copied once, then read from local disk.

Worth it when several epochs or trials on one node read the same files: the
copy is made with the XRootD client (like xrdcp) and verified, and every later
use is checked against the remote size and modification time (the file may have
been rewritten) and the local adler32 (the local disk may have lost it).
The server's checksum is compared when the server has one configured.
Copies are written under a unique temporary name and renamed into place, so
DataLoader workers copying the same file at once never see half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from batchml._fs import replacing, write_atomic
from batchml.data import xrootd
from batchml.data.errors import DataError
from batchml.data.loader_stats import SharedCounters

_BLOCK = 8 << 20


@dataclass(frozen=True)
class CacheEntry:
    """What a cached copy was made from, stored next to it as JSON."""

    url: str
    size: int
    modtime: int
    adler32: str


def adler32(path: Path) -> str:
    """The adler32 of a file as XRootD prints it (8 hex digits)."""
    value = 1
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            value = zlib.adler32(block, value)
    return f"{value:08x}"


class NodeCache:
    """Local copies of remote files under ``folder`` (such as $TMPDIR on a batch node).

    Counts ``hits`` and ``copies`` so tests and users can see the cache worked; they are
    the dataset's ``counters``, which every process reading for it adds to.
    Safe for several processes on one node; not meant for a shared filesystem.
    """

    def __init__(
        self, folder: str | os.PathLike[str], counters: SharedCounters | None = None
    ) -> None:
        self.folder = Path(folder)
        self.counters = counters or SharedCounters()

    @property
    def hits(self) -> int:
        return int(self.counters.snapshot().cache_hits)

    @property
    def copies(self) -> int:
        return int(self.counters.snapshot().cache_copies)

    def path_for(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        return self.folder / f"{digest}-{Path(xrootd.split_url(url)[1]).name}"

    def local_copy(self, url: str) -> str:
        """The local path of a verified copy of ``url``, copying it first if needed."""
        remote = xrootd.stat(url)
        path = self.path_for(url)
        entry = self._entry(path)
        if (
            entry is not None
            and (entry.size, entry.modtime) == (remote.size, remote.modtime)
            and path.is_file()
            and path.stat().st_size == remote.size
            and adler32(path) == entry.adler32
        ):
            self.counters.add(cache_hits=1)
            return str(path)
        self._copy(url, path, remote)
        self.counters.add(cache_copies=1)
        return str(path)

    def _copy(self, url: str, path: Path, remote: xrootd.RemoteStat) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with replacing(path) as partial:
            xrootd.copy(url, str(partial))
            size, checksum = partial.stat().st_size, adler32(partial)
            expected = xrootd.server_adler32(url)
            if size != remote.size or (expected is not None and expected != checksum):
                raise DataError(
                    f"the copy of {url} in {self.folder} does not match the remote file "
                    f"(size {size} vs {remote.size}, adler32 {checksum} vs {expected})",
                    hint="the file may be changing on the server; retry, or drop cache_dir",
                )
        entry = CacheEntry(url=url, size=size, modtime=remote.modtime, adler32=checksum)
        self._write_entry(path, entry)

    @staticmethod
    def _entry(path: Path) -> CacheEntry | None:
        try:
            return CacheEntry(**json.loads(path.with_name(path.name + ".json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    @staticmethod
    def _write_entry(path: Path, entry: CacheEntry) -> None:
        write_atomic(path.with_name(path.name + ".json"), json.dumps(asdict(entry)).encode())
