"""Serving a package's Triton repository with a real ``tritonserver``, on loopback by default.

nvidia-pytriton's python backend needs the stub built for the running
Python's version: it is linked into a private folder that serves as the
server's backend directory, and the stub runs ``model.py`` with the first
``python3`` on the server's PATH, so this interpreter's folder goes first there
(its numpy and onnxruntime run the model).

Ports are free ones chosen here (bound to port 0, then released) unless given;
a port taken between choosing and binding makes the server exit with "already
in use", and the start is retried with new ports. Every endpoint (HTTP, gRPC,
metrics) binds to one host, 127.0.0.1 unless the caller widens it: Triton has
no authentication of its own. The server's output goes to a log file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from batchml._fs import check_destination
from batchml.errors import InvalidValue
from batchml.package.triton.install import (
    Installation,
    Model,
    ServeError,
    check_backends,
    find_server,
    repository_of,
)

LOOPBACK = "127.0.0.1"
START_TRIES = 3
EXIT_TIMEOUT_S = 5  # the server's own grace for requests in flight when asked to stop
_IN_USE = re.compile(r"Socket '([^']*)' already in use")
_NO_BACKEND = re.compile(r"unable to find backend library for backend '([^']+)'")
_NO_AGENT = re.compile(r"unable to find '[^']+' for repo agent '([^']+)'")


@dataclass(frozen=True)
class ServeOptions:
    """Where to listen (ports None: free ones), where the log goes, which server to run."""

    host: str = LOOPBACK
    http_port: int | None = None
    grpc_port: int | None = None
    metrics_port: int | None = None
    log: Path | None = None  # None: tritonserver.log in a new private folder
    tritonserver: Path | None = None  # None: PATH, then nvidia-pytriton
    ready_timeout_s: float = 120.0


@dataclass(frozen=True)
class Endpoints:
    """The three ports of a running server on its host."""

    host: str
    http: int
    grpc: int
    metrics: int

    @property
    def http_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.http}"

    @property
    def grpc_url(self) -> str:
        """What tritonclient.grpc takes: host:port, no scheme."""
        return f"{_url_host(self.host)}:{self.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.metrics}/metrics"


@dataclass
class TritonServer:
    """A running tritonserver serving one repository; ``stop`` ends it (also as a context)."""

    process: subprocess.Popen[bytes]
    endpoints: Endpoints
    log: Path
    models: list[Model]
    installation: Installation
    _scratch: Path | None = field(default=None, repr=False)

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """Ask the server to stop (SIGTERM), kill it if it has not within its grace; its status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(EXIT_TIMEOUT_S + 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        return self.process.returncode

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(package_dir: str | Path, options: ServeOptions | None = None) -> TritonServer:
    """Start a server on the package's repository and return once every model is ready."""
    options = options or ServeOptions()
    repository, models = repository_of(Path(package_dir).absolute())
    installation = find_server(options.tritonserver)
    check_backends(models, installation)
    check_host(options.host)
    if options.log is not None:
        check_destination(options.log, "file", "the server log")
    given = [p for p in (options.http_port, options.grpc_port, options.metrics_port) if p]
    if len(set(given)) < len(given):
        raise InvalidValue(
            f"the HTTP, gRPC and metrics ports must differ, not {', '.join(map(str, given))}",
            hint="give each its own port, or leave them out for free ones",
        )
    for port in given:
        if not _free(options.host, port):
            raise _port_in_use(options.host, port)
    log = options.log or Path(tempfile.mkdtemp(prefix="batchml-triton-")) / "tritonserver.log"
    for attempt in range(START_TRIES):
        endpoints = _endpoints(options)
        server = _start(repository, models, installation, endpoints, log)
        try:
            _wait_ready(server, options.ready_timeout_s)
            return server
        except _PortTaken as taken:
            server.stop()
            if taken.port in given or attempt == START_TRIES - 1:
                raise _port_in_use(options.host, taken.port) from None
        except BaseException:
            server.stop()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def check_host(host: str) -> None:
    """InvalidValue unless ``host`` resolves to an address (checked before anything starts)."""
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise InvalidValue(
            f"--host {host!r} is not an address of this machine ({exc.strerror})",
            hint="leave --host out to serve on 127.0.0.1, or give an address of this machine",
        ) from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _free(host: str, port: int) -> bool:
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        # as servers bind: a port left in TIME_WAIT by a stopped server is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _endpoints(options: ServeOptions) -> Endpoints:
    """The ports asked for, and free ones for the rest, all distinct."""
    held: list[socket.socket] = []
    try:
        ports = []
        for port in (options.http_port, options.grpc_port, options.metrics_port):
            if port:
                ports.append(port)
                continue
            probe = socket.socket(_family(options.host), socket.SOCK_STREAM)
            held.append(probe)  # held until all are chosen, so no two are the same
            probe.bind((options.host, 0))
            ports.append(probe.getsockname()[1])
    finally:
        for probe in held:
            probe.close()
    return Endpoints(options.host, *ports)


def _port_in_use(host: str, port: int) -> InvalidValue:
    return InvalidValue(
        f"port {port} on {host} is in use",
        hint="choose another port, or leave its option out to have a free one chosen",
    )


class _PortTaken(Exception):
    def __init__(self, port: int) -> None:
        self.port = port


def _start(
    repository: Path,
    models: list[Model],
    installation: Installation,
    endpoints: Endpoints,
    log: Path,
) -> TritonServer:
    host = endpoints.host
    command = [
        str(installation.binary),
        f"--model-repository={repository}",
        f"--http-address={host}",
        f"--grpc-address={host}",
        f"--metrics-address={host}",
        f"--http-port={endpoints.http}",
        f"--grpc-port={endpoints.grpc}",
        f"--metrics-port={endpoints.metrics}",
        f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
    ]
    env = dict(os.environ)
    scratch = None
    if installation.stub is not None:
        scratch = _python_backend(installation)
        command.append(f"--backend-directory={scratch}")
        _prepend(env, "PATH", [str(Path(sys.executable).parent)])
    if installation.libraries:
        _prepend(env, "LD_LIBRARY_PATH", [str(p) for p in installation.libraries])
    with log.open("ab") as sink:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env
        )
    return TritonServer(process, endpoints, log, models, installation, scratch)


def _prepend(env: dict[str, str], key: str, folders: list[str]) -> None:
    """Put ``folders`` first in a search path, never leaving an empty entry (the cwd)."""
    kept = [entry for entry in env.get(key, "").split(os.pathsep) if entry]
    env[key] = os.pathsep.join([*folders, *kept])


def _python_backend(installation: Installation) -> Path:
    """A private backend folder: nvidia-pytriton's python backend with this Python's stub."""
    assert installation.python_backend is not None and installation.stub is not None
    scratch = Path(tempfile.mkdtemp(prefix="batchml-triton-backends-"))
    folder = scratch / "python"
    folder.mkdir()
    for item in installation.python_backend.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / installation.stub.name).symlink_to(installation.stub)
    return scratch


def _wait_ready(server: TritonServer, timeout_s: float) -> None:
    """Poll the readiness endpoint until every model is ready, the server exits or time is up."""
    url = f"http://{_url_host(_probe_host(server.endpoints.host))}:{server.endpoints.http}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            _explain_exit(server)
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise ServeError(
        f"tritonserver was not ready after {timeout_s:.0f} s",
        hint=f"its log says why: {server.log}",
    )


def _explain_exit(server: TritonServer) -> None:
    """Raise the reason the server exited during start-up, read from the end of its log."""
    text = server.log.read_text(errors="replace")[-20000:]
    taken = _IN_USE.search(text)
    if taken:
        raise _PortTaken(int(taken.group(1).rpartition(":")[2]))
    missing = _NO_BACKEND.search(text)
    if missing:
        raise ServeError(
            f"tritonserver has no {missing.group(1)} backend for this package",
            hint="rebuild with 'batchml package build MODEL -o DIR --triton-backend python'",
        )
    agent = _NO_AGENT.search(text)
    if agent:
        raise ServeError(
            f"tritonserver has no {agent.group(1)!r} repository agent, which the package names",
            hint="rebuild the package without --triton-checksum",
        )
    errors = [line for line in text.splitlines() if line.startswith("E")]
    last = errors[-1] if errors else "no error line"
    raise ServeError(
        f"tritonserver exited with status {server.process.returncode} while starting: {last}",
        hint=f"its whole log: {server.log}",
    )


def _probe_host(host: str) -> str:
    """Where to reach a server listening on ``host`` from this machine."""
    return {"0.0.0.0": LOOPBACK, "::": "::1"}.get(host, host)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
