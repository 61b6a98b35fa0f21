"""What went wrong opening or reading a file, in one line that says what to do.

uproot and the XRootD client report the same few problems in many shapes: a
folder given as a file is an ``IsADirectoryError`` locally and ``[3016]``
remotely; a file of another format is a ``ValueError`` when it is long and an
``OSError`` about chunk lengths when it is short; so is a truncated file; a
damaged basket raises whatever the decompression library raises (zlib's,
ISA-L's, lz4's). So the exception alone is not trusted where it is ambiguous:
the file's first bytes and size are looked at (a ROOT file starts with
``root`` and its header says where it ends), and a remote error is called
"unreachable" only when it came from the XRootD client's connection.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

from batchml._compat.uproot import raised_inflating
from batchml.data import xrootd
from batchml.data.errors import (
    DataError,
    DataFileNotFoundError,
    DataPermissionError,
    DataTimeoutError,
    DataUnreachableError,
    UnreadableFileError,
    where,
)
from batchml.errors import BatchmlError

_MAGIC = b"root"
_HEADER = struct.Struct(">4siii")  # magic, fVersion, fBEGIN, fEND (32 bits)
_BIG_HEADER = struct.Struct(">4siiq")  # fEND in 64 bits from version 1000000 on
_HEAD_BYTES = _BIG_HEADER.size


def as_data_error(
    exc: Exception, url: str, tree: str | None = None, branches: Sequence[str] = ()
) -> BatchmlError:
    """One batchml error for whatever uproot or the XRootD client raised about ``url``."""
    if isinstance(exc, BatchmlError):
        return exc
    place = where(url, tree, branches)
    text = _one_line(exc)
    remote = xrootd.is_remote(url)
    relative = xrootd.relative_path(url) if remote else None
    if relative is not None and ("[3010]" in text or "[3011]" in text):
        return DataFileNotFoundError(
            f"the server refused {url}: its path {relative!r} is relative (one '/' after the port)",
            hint=f"write two slashes after the port: {xrootd.absolute_url(url)}",
        )
    if isinstance(exc, IsADirectoryError) or "[3016]" in text:
        return UnreadableFileError(
            f"{url} is a folder, not a ROOT file", hint=f"give the files in it: {url}/*.root"
        )
    if isinstance(exc, PermissionError) or "[3010]" in text:
        return DataPermissionError(
            f"permission denied reading {place}",
            hint="check the file's permissions and your token/proxy",
        )
    if isinstance(exc, FileNotFoundError) or "[3011]" in text:
        return DataFileNotFoundError(f"no such file: {place}", hint=_missing_hint(url))
    if isinstance(exc, TimeoutError):
        return DataTimeoutError(
            f"timed out reading {place}: {text}",
            hint="the server is slow or overloaded; raise timeout= or retry later",
        )
    if remote and isinstance(exc, OSError) and "XRootD error" in text:
        return _unreachable(place, text)
    if raised_inflating(exc):
        return UnreadableFileError(
            f"a basket of {place} does not decompress ({type(exc).__name__}: {text}): "
            "the file is damaged",
            hint="copy it again from its source and compare checksums (xrdadler32), "
            "or leave this file out",
        )
    return _from_the_file(url, place, exc, text)


def _from_the_file(url: str, place: str, exc: Exception, text: str) -> BatchmlError:
    """Not a ROOT file, or a truncated one, by its first bytes and size; else the error as is."""
    try:
        head, size = _head(url)
    except DataError as failure:  # (raised by the XRootD client's status: it says what)
        return failure
    except OSError:
        head, size = b"", -1
    if size >= 0 and not head.startswith(_MAGIC):
        return UnreadableFileError(
            f"{url} is not a ROOT file: it starts with {head[:4]!r}, not {_MAGIC!r}",
            hint="give ROOT files only (check that the pattern matches nothing else)",
        )
    end = _declared_end(head)
    if end is not None and 0 <= size < end:
        return UnreadableFileError(
            f"{url} is truncated: {size:,} bytes where its ROOT header says {end:,}",
            hint="the copy is incomplete: copy it again from its source",
        )
    return DataError(
        f"cannot read {place}: {type(exc).__name__}: {text}",
        hint="is it a ROOT file written completely? 'batchml -v' shows the traceback",
    )


def _head(url: str) -> tuple[bytes, int]:
    """The file's first bytes and its size."""
    if xrootd.is_remote(url):
        return xrootd.head(url, _HEAD_BYTES)
    with open(url, "rb") as handle:
        return handle.read(_HEAD_BYTES), os.fstat(handle.fileno()).st_size


def _declared_end(head: bytes) -> int | None:
    """fEND of a ROOT header: the byte where the file ends, as written."""
    if len(head) < _HEADER.size:
        return None
    version = _HEADER.unpack_from(head)[1]
    if version >= 1_000_000:
        return _BIG_HEADER.unpack_from(head)[3] if len(head) >= _BIG_HEADER.size else None
    return int(_HEADER.unpack_from(head)[3])


def _missing_hint(url: str) -> str:
    if xrootd.is_remote(url):
        host, path = xrootd.split_url(url)
        return f"check the path: xrdfs {host} ls {os.path.dirname(path)}"
    folder = Path(url).parent
    if not folder.is_dir():
        return f"the folder {folder} does not exist: check the path"
    return f"check the name: ls {folder}"


def _unreachable(place: str, text: str) -> DataUnreachableError:
    return DataUnreachableError(
        f"cannot reach the server for {place}: {text}",
        hint="check the host name and port, and that the server is up",
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
