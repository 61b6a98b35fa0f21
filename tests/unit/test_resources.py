"""One request compiled per scheduler: no hidden defaults, no clashing directives."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import classad2
import pytest

from batchml.config.resources import (
    Resources,
    htcondor_flavour,
    htcondor_gpu_requirement,
    htcondor_submit_entries,
    slurm_directives,
)
from batchml.config.site_lookup import load_site
from batchml.config.site_schema import Site
from batchml.errors import InvalidValue


def site_from(tmp_path: Path, text: str) -> Site:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_site(path).site


def test_site_defaults_fill_what_the_call_leaves_out() -> None:
    site = load_site("lxplus").site
    res = Resources.from_site(site, gpus=2, walltime="3h")
    assert (res.gpus, res.walltime, res.cores, res.memory) == (2, timedelta(hours=3), 4, 16 * 10**9)
    assert res.filled_from_site == {
        "cores",
        "memory",
        "disk",
        "gpu_capability",
        "gpu_memory",
        "gpu_names",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gpuz": 1}, "unknown resource 'gpuz'"),
        ({"memory": "lots"}, "not a size"),
        ({"walltime": "soon"}, "not a duration"),
        ({"cores": 0}, "cores must be positive"),
        ({"gpus": 3, "gpus_per_task": 2}, "does not divide"),
    ],
)
def test_bad_requests_say_what_is_wrong(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        Resources.from_site(load_site("local").site, **overrides)


@pytest.mark.parametrize(
    ("walltime", "flavour"),
    [
        ("10m", "espresso"),
        ("20m", "espresso"),
        ("21m", "microcentury"),
        ("2h", "longlunch"),
        ("3h", "workday"),
        ("1d", "tomorrow"),
        ("2d", "testmatch"),
        ("1w", "nextweek"),
    ],
)
def test_smallest_flavour_that_fits(walltime: str, flavour: str) -> None:
    res = Resources.from_site(load_site("local").site, walltime=walltime)
    assert htcondor_flavour(res.walltime) == flavour


def test_no_flavour_longer_than_a_week() -> None:
    with pytest.raises(InvalidValue, match="longer than any lxplus job flavour"):
        htcondor_flavour(timedelta(days=8))


def test_htcondor_entries_for_lxplus_parse_as_classads() -> None:
    site = load_site("lxplus").site
    res = Resources.from_site(
        site, gpus=1, walltime="3h", gpu_memory="16GiB", gpu_names="A100,H100"
    )
    entries = htcondor_submit_entries(res, site)
    assert entries["request_gpus"] == "1" and entries["+JobFlavour"] == '"workday"'
    assert entries["request_memory"] == "15259MB"  # 16 GB in MiB, rounded up
    requirement = entries["requirements"]
    assert "(TARGET.GPUs_Capability ?: TARGET.CUDACapability) >= 7.0" in requirement
    assert "GPUs_GlobalMemoryMb ?: TARGET.CUDAGlobalMemoryMb) >= 16384" in requirement
    classad2.ExprTree(requirement)  # the real parser accepts it
    gpu = classad2.ClassAd(
        {"GPUs_Capability": 8.0, "GPUs_GlobalMemoryMb": 40000, "GPUs_DeviceName": "NVIDIA A100"}
    )
    legacy = classad2.ClassAd(
        {"CUDACapability": 8.0, "CUDAGlobalMemoryMb": 40000, "CUDADeviceName": "H100"}
    )
    small = classad2.ClassAd(
        {"GPUs_Capability": 6.1, "GPUs_GlobalMemoryMb": 40000, "GPUs_DeviceName": "A100"}
    )
    job = classad2.ClassAd()
    job["Requirements"] = classad2.ExprTree(requirement)
    assert [m.matches(job) for m in (gpu, legacy, small)] == [True, True, False]


def test_htcondor_without_flavours_uses_max_runtime(tmp_path: Path) -> None:
    site = site_from(tmp_path, "scheduler: htcondor\n")
    entries = htcondor_submit_entries(Resources.from_site(site, walltime="90m"), site)
    assert entries["+MaxRuntime"] == "5400" and "+JobFlavour" not in entries
    assert "requirements" not in entries and "request_gpus" not in entries
    assert htcondor_gpu_requirement(Resources(gpus=0, gpu_capability=7.0)) is None


def test_slurm_never_both_mem_and_mem_per_gpu(tmp_path: Path) -> None:
    site = site_from(
        tmp_path, "scheduler: slurm\nslurm: {memory_directive: mem-per-gpu, gpu_type: a100}\n"
    )
    options = slurm_directives(
        Resources.from_site(site, gpus=4, memory="64GB", walltime="1d2h"), site
    )
    assert "--mem-per-gpu=15259M" in options and not any(o.startswith("--mem=") for o in options)
    assert "--gres=gpu:a100:4" in options and "--time=1-02:00:00" in options
    assert "--signal=B:USR1@300" in options
    cpu_only = slurm_directives(Resources.from_site(site, gpus=0), site)
    assert any(o.startswith("--mem=") for o in cpu_only) and not any("gpu" in o for o in cpu_only)


def test_slurm_generic_site_compiles_every_setting() -> None:
    site = load_site("slurm-generic").site
    options = slurm_directives(Resources.from_site(site), site)
    assert options == [
        "--cpus-per-task=8",
        "--time=0-04:00:00",
        "--mem=30518M",
        "--gres=gpu:1",
        "--partition=gpu",
        "--signal=B:USR1@300",
    ]


def test_gpus_per_node_style(tmp_path: Path) -> None:
    site = site_from(
        tmp_path, "scheduler: slurm\nslurm: {gpu_directive: gpus-per-node, account: phys}\n"
    )
    options = slurm_directives(Resources.from_site(site, gpus=2, gpus_per_task=1), site)
    assert {"--gpus-per-node=2", "--gpus-per-task=1", "--account=phys"} <= set(options)


def test_slurm_shares_of_a_gpu_are_asked_as_shards_or_mig_slices(tmp_path: Path) -> None:
    shard = site_from(
        tmp_path,
        "scheduler: slurm\nslurm: {gpu_share: shard, shards_per_gpu: 8, "
        "memory_directive: mem-per-gpu}\n",
    )
    options = slurm_directives(Resources.from_site(shard, gpus=8, gpu_unit="shard"), shard)
    assert "--gres=shard:8" in options
    assert not [o for o in options if o.startswith(("--gres=gpu", "--mem-per-gpu"))]
    assert [o for o in options if o.startswith("--mem=")]  # per job: a shard's memory is no unit
    mig = site_from(
        tmp_path,
        "scheduler: slurm\nslurm: {gpu_share: mig, mig_profile: 1g.18gb, gpu_type: h100}\n",
    )
    options = slurm_directives(Resources.from_site(mig, gpus=4, gpu_unit="mig"), mig)
    assert "--gres=gpu:1g.18gb:4" in options  # a slice is a GPU of the profile's type
    whole = slurm_directives(Resources.from_site(mig, gpus=1), mig)
    assert "--gres=gpu:h100:1" in whole  # whole-GPU jobs on the same site are unchanged
    with pytest.raises(InvalidValue, match="does not lend GPUs as shards"):
        Resources.from_site(mig, gpus=2, gpu_unit="shard")
