"""One study over the real Slurm, the real HTCondor pool and the local machine at once,
and every Slurm job of the study cancelled mid-study.

dask pickles the objective, so the driver and every worker run one Python: the
driver runs in the pool (tests/integration/sites_pool_driver.py), with the Slurm
cluster whose jobs run there too (tests/services/pool-slurm.sh, README there).
This module checks the report the driver wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.htcondor]
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def report(htcondor_env: dict[str, str], pool_slurm_env: dict[str, str]) -> dict[str, Any]:
    from tests.integration.pool import run_in_pool

    extra = (HERE / "hpo_pool_driver.py", HERE.parent / "unit" / "hpo_objectives.py")
    keys = ("BATCHML_POOL_SLURM_CONF", "BATCHML_POOL_SLURM_PARTITION")
    args = tuple(pool_slurm_env[key] for key in keys)
    return run_in_pool(htcondor_env, HERE / "sites_pool_driver.py", extra, timeout_s=240, args=args)


def test_exactly_n_trials_complete_on_every_site(report: dict[str, Any]) -> None:
    complete = [t for t in report["trials"] if t["state"] == "COMPLETE"]
    assert len(complete) == report["n_trials"]
    assert len({t["attrs"]["batchml.site"] for t in complete}) == len(report["sites"]) == 3
    # The Slurm site ran trials before its jobs were cancelled.
    assert any(t["attrs"].get("job") in report["cancelled"] for t in complete)


def test_cancelled_site_trials_are_retried_with_their_parameters(report: dict[str, Any]) -> None:
    trials = report["trials"]
    assert report["cancelled"] and report["running"]
    cancelled = [t for t in trials if t["attrs"].get("job") in report["cancelled"]]
    on_cancelled = {t["attrs"]["batchml.site"] for t in cancelled}
    assert len(on_cancelled) == 1  # all cancelled jobs were the Slurm site's
    retries = [t for t in trials if "batchml.retry_of" in t["attrs"]]
    # A trial that ran on a cancelled job, with parameters sampled, was retried.
    retried = [t["attrs"]["batchml.retry_of"] for t in retries]
    assert any(number in report["running"] and trials[number]["params"] for number in retried)
    for retry in retries:
        if retry["state"] != "COMPLETE":
            continue  # lost before it sampled (its own retry carries the parameters on)
        # Every parameter an earlier attempt sampled before its job went (none, if it had
        # not started; some, if it was cancelled mid-way) is the completed retry's too.
        earlier = retry
        while "batchml.retry_of" in earlier["attrs"]:
            earlier = trials[earlier["attrs"]["batchml.retry_of"]]
            assert earlier["params"].items() <= retry["params"].items()
    # Each trial running when its job was cancelled completed, itself or as a retry.
    completed = {first_attempt(trials, t["number"]) for t in trials if t["state"] == "COMPLETE"}
    assert set(report["running"]) <= completed


def first_attempt(trials: list[dict[str, Any]], number: int) -> int:
    """The trial that ``number`` retries, through retries of retries; itself if none."""
    while "batchml.retry_of" in trials[number]["attrs"]:
        number = trials[number]["attrs"]["batchml.retry_of"]
    return number
