"""Test-wide wiring for the real services (Slurm, HTCondor, XRootD) and Chromium.

The service scripts in tests/services/ publish one ``<name>.env`` file per
running service. Those files are loaded into ``os.environ`` before any test
module is imported (the HTCondor bindings read ``CONDOR_CONFIG`` at import).
A test marked with a service marker skips locally when that service is not
running, and fails in CI, where a skipped integration test would hide a
broken set-up. The ``chromium`` marker does the same for the headless browser
that opens the demo's report (tests/run.sh installs it), and ``triton`` for a
tritonserver (the Makefile installs nvidia-pytriton's).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from tests.unit.package_fixtures import Runtime

SERVICE_MARKERS = ("slurm", "htcondor", "xrootd")
SERVICES_DIR = Path(os.environ.get("BATCHML_SERVICES_DIR", "/tmp/batchml-services"))
CHROMIUM_INSTALL = "apt-get install -y --no-install-recommends chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def read_service_env(name: str) -> dict[str, str] | None:
    """The KEY=VALUE pairs a running service published, or None when it is not running."""
    path = SERVICES_DIR / f"{name}.env"
    if not path.is_file():
        return None
    pairs = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def pytest_configure(config: pytest.Config) -> None:
    for name in SERVICE_MARKERS:
        os.environ.update(read_service_env(name) or {})


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name in SERVICE_MARKERS:
        if item.get_closest_marker(name) is None or read_service_env(name) is not None:
            continue
        reason = (
            f"the {name} test service is not running: start it with "
            f"'bash tests/services/{name}.sh start' (as root)"
        )
        _missing(name, reason)
    if item.get_closest_marker("chromium") is not None and shutil.which("chromium") is None:
        _missing("chromium", f"chromium not found: install it with '{CHROMIUM_INSTALL}' (as root)")
    if item.get_closest_marker("triton") is not None:
        _need_tritonserver()
    if item.get_closest_marker("gpu") is not None and shutil.which("nvidia-smi") is None:
        pytest.skip("needs a CUDA GPU (nvidia-smi not found)")


def _need_tritonserver() -> None:
    from batchml.errors import BatchmlError
    from batchml.package.triton.install import find_server

    try:
        find_server()
    except BatchmlError as exc:
        _missing("triton", f"{exc.message}: {exc.hint}")


def _missing(name: str, reason: str) -> NoReturn:
    """Skip a test whose service or tool is missing; in CI, fail it instead."""
    if IN_CI:
        pytest.fail(f"CI must run every {name} test, but {reason}", pytrace=False)
    pytest.skip(reason)


def _service_fixture(name: str) -> dict[str, str]:
    env = read_service_env(name)
    assert env is not None, f"{name} fixture used by a test without the '{name}' marker"
    return env


@pytest.fixture(scope="session")
def slurm_env() -> dict[str, str]:
    """SLURM_CONF and friends of the running local Slurm cluster."""
    return _service_fixture("slurm")


@pytest.fixture(scope="session")
def htcondor_env() -> dict[str, str]:
    """CONDOR_CONFIG and the pool's submit user, shared folder and chroot."""
    return _service_fixture("htcondor")


@pytest.fixture(scope="session")
def pool_slurm_env() -> dict[str, str]:
    """The Slurm cluster whose jobs run the HTCondor pool's Python (tests/services/pool-slurm.sh).

    Only tests marked both ``slurm`` and ``htcondor`` use it; it is started after both.
    """
    env = read_service_env("pool-slurm")
    if env is None:
        start = "bash tests/services/pool-slurm.sh start"
        _missing("slurm", f"the pool's Slurm is not running: start it with '{start}' (as root)")
    return env


@pytest.fixture(scope="session")
def xrootd_env() -> dict[str, str]:
    """The URL of the running XRootD server and the local folder it exports."""
    return _service_fixture("xrootd")


@pytest.fixture(scope="session")
def old_onnxruntime() -> Runtime:
    """A Python with only onnxruntime 1.16.3 and numpy<2 (CMSSW's), built once if missing."""
    from tests.unit.package_fixtures import old_onnxruntime as build

    return build()
