"""`batchml demo --site SITE` on the real HTCondor pool: the same pipeline, trials as worker jobs.

The demo runs inside the pool (tests/integration/demo_pool_driver.py), where its
dask workers' Python is; this module checks the report the driver writes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.htcondor, pytest.mark.timeout(300)]
HERE = Path(__file__).parent


def test_demo_runs_its_trials_as_htcondor_jobs(htcondor_env: dict[str, str]) -> None:
    from tests.integration.pool import run_in_pool

    report = run_in_pool(htcondor_env, HERE / "demo_pool_driver.py", timeout_s=240)
    stdout = report["stdout"]
    assert report["returncode"] == 0, stdout[-3000:] + report["stderr"][-3000:]
    assert "on site demo-htcondor (htcondor)" in stdout
    assert "as demo-mlp@production" in stdout
    auc = float(stdout.split("test AUC ")[-1].split(";")[0])
    assert auc > 0.6
    assert report["registered"], (
        f"no HTCondor worker job registered with the demo's scheduler: logs {report['logs']}\n"
        f"{report['stderr'][-3000:]}"
    )
