"""The XRootD client, configured for batch jobs: timeouts, wildcard listing, stat and copy.

The client's defaults suit an interactive user, not a batch job: a lost
connection stalls a read for 120 s per attempt, gives up after 480 s, and a
broken connection stays marked broken for 1800 s, so even a server that is back
at once is not reused. batchml's own retry (see ``source.py``) resumes a read
from where it stopped, so the client should fail fast and let it.
The settings only count if set before the library loads (``XRD_*`` variables)
or through ``EnvPutInt`` afterwards; ``configure_client`` does both, and a
user's own ``XRD_*`` variables win.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Any

from batchml.data.errors import (
    DataError,
    DataFileNotFoundError,
    DataPermissionError,
    DataTimeoutError,
    DataUnreachableError,
)

BATCH_CLIENT_SETTINGS = {
    "ConnectionWindow": 15,
    "ConnectionRetry": 2,
    "RequestTimeout": 300,
    "StreamErrorWindow": 5,
}
WILDCARDS = "*?["
_NOT_FOUND, _PERMISSION = 3011, 3010


def is_remote(url: str) -> bool:
    return url.startswith(("root://", "roots://"))


def configure_client(**settings: int) -> None:
    """Apply the batch-job timeouts (``settings`` override them; ``XRD_*`` variables win)."""
    for key, value in {**BATCH_CLIENT_SETTINGS, **settings}.items():
        variable = f"XRD_{key.upper()}"
        if key in settings:
            os.environ[variable] = str(value)
        else:
            os.environ.setdefault(variable, str(value))
    from XRootD import client

    for key in {**BATCH_CLIENT_SETTINGS, **settings}:
        client.EnvPutInt(key, int(os.environ[f"XRD_{key.upper()}"]))


def relative_path(url: str) -> str | None:
    """The path of 'root://host:port/a/b.root' (one slash: relative to the server), else None."""
    from XRootD import client

    path = client.URL(url).path
    return None if path.startswith("/") else path


def absolute_url(url: str) -> str:
    """'root://host:port/a/b.root' -> 'root://host:port//a/b.root'."""
    host, path = split_url(url)
    return f"{host}/{path}"


def split_url(url: str) -> tuple[str, str]:
    """'root://host:port//a/b.root' -> ('root://host:port', '/a/b.root')."""
    from XRootD import client

    parsed = client.URL(url)
    return f"{parsed.protocol}://{parsed.hostid}", "/" + parsed.path.lstrip("/")


def raise_for_status(status: Any, url: str, action: str) -> None:
    """Turn a failed XRootD status into the batchml error for it, naming the URL."""
    if status.ok:
        return
    text = f"cannot {action} {url}: {status.message.strip()}"
    if status.errno == _NOT_FOUND:
        raise DataFileNotFoundError(text, hint="check the path (note the '//' after the port)")
    if status.errno == _PERMISSION:
        raise DataPermissionError(text, hint="check the file's permissions and your token/proxy")
    if "timeout" in status.message.lower():
        raise DataTimeoutError(text, hint="the server is slow or overloaded; retry later")
    if status.fatal or status.error:
        raise DataUnreachableError(text, hint="check the host name and that the server is up")
    raise DataError(text)


@dataclass(frozen=True)
class RemoteStat:
    size: int
    modtime: int


def stat(url: str) -> RemoteStat:
    from XRootD import client

    host, path = split_url(url)
    status, info = client.FileSystem(host).stat(path)
    raise_for_status(status, url, "stat")
    return RemoteStat(size=int(info.size), modtime=int(info.modtime))


def head(url: str, size: int) -> tuple[bytes, int]:
    """The first ``size`` bytes of a remote file, and its size (OSError if unreachable)."""
    from XRootD import client

    remote = client.File()
    status, _ = remote.open(url)
    raise_for_status(status, url, "open")
    try:
        status, info = remote.stat()
        raise_for_status(status, url, "stat")
        status, data = remote.read(0, size)
        raise_for_status(status, url, "read")
    finally:
        remote.close()
    return bytes(data), int(info.size)


def server_adler32(url: str) -> str | None:
    """The server's adler32 of the file, or None when the server has no checksum configured."""
    from XRootD import client

    host, path = split_url(url)
    status, answer = client.FileSystem(host).query(client.flags.QueryCode.CHECKSUM, path)
    if not status.ok or not answer:
        return None
    name, _, value = answer.decode().strip("\x00 \n").partition(" ")
    return value if name == "adler32" else None


def copy(url: str, target: str) -> None:
    """Copy one remote file to a local path with the XRootD client (like xrdcp)."""
    from XRootD import client

    process = client.CopyProcess()
    process.add_job(url, target, force=True)
    raise_for_status(process.prepare(), url, "copy")
    status, results = process.run()
    raise_for_status(status, url, "copy")
    for result in results:
        raise_for_status(result["status"], url, "copy")


def expand(url: str) -> list[str]:
    """Every file a wildcard URL matches, by listing the server's folders; sorted."""
    host, path = split_url(url)
    if not any(c in path for c in WILDCARDS):
        return [url]
    found = [f"{host}/{p}" for p in _expand_parts("/", path.strip("/").split("/"), host, url)]
    if not found:
        raise DataFileNotFoundError(
            f"no file on {host} matches {url}", hint="check the pattern with: xrdfs HOST ls DIR"
        )
    return sorted(found)


def _expand_parts(folder: str, parts: list[str], host: str, url: str) -> list[str]:
    head, rest = parts[0], parts[1:]
    if not any(c in head for c in WILDCARDS):
        names = [head]
    else:
        from XRootD import client

        status, listing = client.FileSystem(host).dirlist(folder)
        raise_for_status(status, f"{host}/{folder}", f"list (for {url})")
        names = sorted(e.name for e in listing if fnmatch.fnmatchcase(e.name, head))
    paths = [os.path.join(folder, name) for name in names]
    if not rest:
        return paths
    return [found for p in paths for found in _expand_parts(p, rest, host, url)]
