"""Running a driver script inside the HTCondor test pool, where its dask workers run.

Workers run as the pool's submit user with the pool venv's Python (3.13 on a
Debian 12 host, in the chroot), which cannot read the host's venv under /root;
a dask driver needs the same Python and packages as its workers, so such
tests run a driver script in the pool with a copy of the checkout's batchml
beside it, and check the JSON report it writes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

import batchml


def run_in_pool(
    htcondor_env: dict[str, str],
    driver: Path,
    extra: tuple[Path, ...] = (),
    timeout_s: float = 240,
    args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run ``driver RUN_DIR ARGS...`` in the pool; the report it wrote to RUN_DIR/report.json.

    The driver starts with a clean environment (the pool's wrapper): what it needs
    from the test's, such as a SLURM_CONF, comes in ``args``.
    """
    shared = Path(htcondor_env["BATCHML_HTCONDOR_SHARED"])
    run_dir = Path(tempfile.mkdtemp(prefix=f"{driver.stem}-", dir=shared))
    run_dir.chmod(0o777)
    source = run_dir / "src"
    shutil.copytree(
        Path(batchml.__file__).parent,
        source / "batchml",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for path in (driver, Path(__file__).with_name("pool_log.py"), *extra):
        shutil.copy(path, source / path.name)
    bin_dir = Path(htcondor_env["BATCHML_HTCONDOR_BIN"])
    driver_process = subprocess.Popen(
        [str(bin_dir / "batchml-pool-python"), str(source / driver.name), str(run_dir), *args],
        cwd=run_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # the driver runs behind wrappers: stop the whole group
    )  # fmt: skip
    try:
        stdout, stderr = driver_process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(driver_process.pid, signal.SIGKILL)
        stdout, stderr = driver_process.communicate()
        stderr += f"\n(killed after {timeout_s:.0f} s)"
    (run_dir / "driver.stderr").write_text(stderr)
    report = run_dir / "report.json"
    if driver_process.returncode != 0 or not report.is_file():
        # Worker jobs of a driver that died would hold the pool's GPUs for the next test.
        subprocess.run([str(bin_dir / "condor_rm"), htcondor_env["BATCHML_HTCONDOR_USER"]],
                       capture_output=True, check=False)  # fmt: skip
        pytest.fail(
            f"the pool driver failed ({driver_process.returncode}); files kept in {run_dir}\n"
            f"{stdout[-3000:]}\n{stderr[-12000:]}"
        )
    result: dict[str, Any] = json.loads(report.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    return result
