"""dask's web server on every backend: the dashboard on loopback or the site's interface
when the site asks for it, and no page at all otherwise (shared login nodes).

The clusters are real; the batch ones start no job (their scheduler runs in this process).
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from distributed import Client

from batchml.backends import backend_for
from batchml.config.resources import Resources
from batchml.config.site_lookup import load_site

HIDDEN_PAGES = ("status", "info/main/workers.html", "json/identity.json", "metrics")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _listening(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of these processes."""
    return {
        (c.laddr.ip, c.laddr.port)
        for pid in pids
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }


def _web_port(client: Client) -> int:
    """The port of the scheduler's web server (dask starts one, dashboard or not)."""
    return int(client.scheduler_info()["services"]["dashboard"])


def test_the_local_dashboard_and_every_worker_port_listen_on_loopback_only() -> None:
    backend = backend_for(load_site("local").site)
    assert backend.site.network.dashboard  # the shipped local site turns it on
    with (
        backend.cluster(Resources(cores=1), jobs=1) as cluster,
        Client(cluster) as client,
    ):
        port = _web_port(client)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=30) as page:
            assert page.status == 200 and b"Dask" in page.read()
        scheduler = int(cluster.scheduler_address.rsplit(":", 1)[1])
        mine = {s for s in _listening([os.getpid()]) if s[1] in (port, scheduler)}
        assert mine == {("127.0.0.1", port), ("127.0.0.1", scheduler)}  # not 0.0.0.0 or ::
        workers = [*client.run(os.getpid).values(), *client.run(os.getpid, nanny=True).values()]
        ports = _listening(workers)
        assert len(ports) >= 3 and {ip for ip, _ in ports} == {"127.0.0.1"}  # nanny, worker, web


def _site(folder: Path, text: str) -> str:
    path = folder / "site.yaml"
    path.write_text(text)
    return str(path)


def _batch_site(folder: Path, scheduler: str, network: str) -> str:
    """A site of ``scheduler`` whose folders are in ``folder``."""
    return _site(
        folder,
        f"scheduler: {scheduler}\nnetwork: {network}\n"
        f"paths: {{log_dir: {folder}/logs, shared_dir: {folder}}}\n",
    )


@pytest.mark.parametrize(
    "site",
    [
        lambda d: _site(d, "extends: local\nnetwork: {dashboard: false}\n"),
        lambda d: _batch_site(d, "slurm", "{interface: lo}"),
        # lxplus's own network section: no interface, the dashboard left at its default
        lambda d: _batch_site(d, "htcondor", "{worker_ports: 40000-40100}"),
    ],
    ids=["local", "slurm", "htcondor-like-lxplus"],
)
def test_without_the_dashboard_the_web_server_is_on_loopback_and_shows_nothing(
    site: object, tmp_path: Path
) -> None:
    resolved = load_site(site(tmp_path)).site  # type: ignore[operator]
    assert not resolved.network.dashboard
    jobs = 1 if resolved.scheduler == "local" else 0
    with (
        backend_for(resolved).cluster(Resources(cores=1), jobs=jobs) as cluster,
        Client(cluster) as client,
    ):
        port = _web_port(client)
        assert {s for s in _listening([os.getpid()]) if s[1] == port} == {("127.0.0.1", port)}
        for page in HIDDEN_PAGES:
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/{page}", timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as health:
            assert health.read() == b"ok"


def _an_interface() -> tuple[str, str]:
    """A network interface of this machine and its IPv4 address, not loopback if there is one."""
    found = [
        (name, a.address)
        for name, addresses in psutil.net_if_addrs().items()
        for a in addresses
        if a.family == socket.AF_INET
    ]
    return sorted(found, key=lambda pair: pair[1].startswith("127."))[0]


def test_a_batch_site_that_asks_for_the_dashboard_gets_it_on_its_interface_only(
    tmp_path: Path,
) -> None:
    interface, address = _an_interface()
    site = _batch_site(tmp_path, "slurm", f"{{interface: {interface}, dashboard: true}}")
    with (
        backend_for(load_site(site).site).cluster(Resources(cores=1)) as cluster,
        Client(cluster) as client,
    ):
        port = _web_port(client)
        assert {s for s in _listening([os.getpid()]) if s[1] == port} == {(address, port)}
        assert client.dashboard_link == f"http://{address}:{port}/status"
        with urllib.request.urlopen(client.dashboard_link, timeout=30) as page:
            assert page.status == 200


@pytest.mark.parametrize("name", ["lxplus", "slurm-generic"])
def test_the_shipped_shared_login_node_sites_leave_the_dashboard_off(name: str) -> None:
    assert load_site(name).site.network.dashboard is False
