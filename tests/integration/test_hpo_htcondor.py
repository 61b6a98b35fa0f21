"""Searches on the real HTCondor pool: trials on GPU worker jobs, and a worker job removed.

The studies run inside the pool (tests/integration/hpo_pool_driver.py); this
module checks their report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.hpo_checks import slot_clashes

pytestmark = pytest.mark.htcondor
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def report(htcondor_env: dict[str, str]) -> dict[str, Any]:
    from tests.integration.pool import run_in_pool

    driver, objectives = HERE / "hpo_pool_driver.py", HERE.parent / "unit" / "hpo_objectives.py"
    return run_in_pool(htcondor_env, driver, extra=(objectives,), timeout_s=300)


def test_sixteen_trials_on_two_jobs_of_two_gpus(report: dict[str, Any]) -> None:
    trials = [t for t in report["slots"] if t["state"] == "COMPLETE"]
    assert len(trials) == 16
    jobs = {t["attrs"]["job"] for t in trials}
    assert len(jobs) == 2 and "" not in jobs
    for trial in trials:
        seen = trial["attrs"]["seen_devices"]
        assert seen == trial["attrs"]["batchml.devices"] and seen.startswith("GPU-")
        assert "," not in seen  # HTCondor gave GPU ids; each trial got exactly one
    assert slot_clashes({t["number"]: t["attrs"] for t in trials}) == []


def test_removed_worker_job_is_replaced_and_its_trial_retried(report: dict[str, Any]) -> None:
    trials = report["preempt"]
    first = trials[1]
    assert report["removed"] == first["attrs"]["job"]
    assert first["state"] == "FAIL" and first["attrs"]["batchml.outcome"] == "preempted"
    retry = next(t for t in trials if t["attrs"].get("batchml.retry_of") == 1)
    assert retry["state"] == "COMPLETE" and retry["params"] == first["params"]
    assert retry["attrs"]["job"] not in ("", report["removed"])  # the study's only other job
    assert sum(t["state"] == "COMPLETE" for t in trials) == 8
    assert report["jobs_replaced"] == 1  # once: a slow replacement is not taken for ended
