"""Trials sharing a GPU packed by memory, and the retry alone of one out of memory beside others."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch
from optuna.trial import FrozenTrial, TrialState

from batchml.errors import ConfigError, InvalidValue
from batchml.hpo import run_study
from batchml.hpo.config import load_config
from batchml.hpo.gpu_memory import (
    DEVICE_MEMORY_ENV,
    MemoryPacker,
    device_capacities,
    fits,
    is_cuda_oom,
    parse_gpu_memory,
)
from batchml.hpo.outcome import (
    GPU_PEAK_ATTR,
    OUTCOME_ATTR,
    RETRY_ALONE_ATTR,
    RETRY_OF_ATTR,
    Outcome,
)
from batchml.hpo.slots import SlotPool
from batchml.hpo.spec import Objective
from tests.unit import hpo_objectives as objectives
from tests.unit.hpo_checks import most_at_once

GB = 10**9


def test_a_device_admits_a_trial_while_the_peaks_fit_with_the_margin() -> None:
    assert fits(80 * GB, [20 * GB, 30 * GB], 20 * GB)  # 70 GB of the 72 the margin leaves
    assert not fits(80 * GB, [20 * GB, 30 * GB], 30 * GB)  # 80 GB: no room for the margin
    assert fits(80 * GB, [], 100 * GB)  # alone it runs: it could run nowhere else


def test_auto_packs_nothing_beside_a_trial_of_unknown_size_then_by_the_largest_peak() -> None:
    packer = MemoryPacker("auto", {"0": 80 * GB})
    assert packer.admits("0", 0) and not packer.admits("0", 1)  # no peak measured yet
    packer.record(30 * GB)
    packer.record(20 * GB)  # the largest peak counts for every trial
    assert packer.admits("0", 1) and not packer.admits("0", 2)  # 60 of 72; 90 of 72
    assert packer.admits("unknown-device", 5)  # memory unknown: only the k cap holds


def test_a_declared_figure_gives_way_to_a_larger_measured_peak() -> None:
    packer = MemoryPacker(6 * GB, {"0": 20 * GB})
    assert packer.admits("0", 2) and not packer.admits("0", 3)  # 18 of 18 GB; 24
    packer.record(9 * GB)
    assert packer.admits("0", 1) and not packer.admits("0", 2)


def test_the_pool_fills_a_device_only_as_far_as_its_memory() -> None:
    pool = SlotPool(
        ["0", "1"], per_trial=0.25, packer=MemoryPacker(4 * GB, dict.fromkeys("01", 10 * GB))
    )
    with ExitStack() as held:
        taken = [held.enter_context(pool.take()) for _ in range(4)]  # two of 4 GB on each of 10
        assert sorted(s.devices for s in taken) == [("0",), ("0",), ("1",), ("1",)]
        waited: list[tuple[str, ...]] = []

        def fifth() -> None:
            with pool.take() as slot:
                waited.append(slot.devices)

        late = threading.Thread(target=fifth)
        late.start()
        time.sleep(0.3)
        assert waited == []  # four seats are free, but no memory: it waits
        held.close()  # the four end
        late.join(5)
        assert waited == [("0",)] or waited == [("1",)]


def test_a_trial_alone_waits_for_an_empty_device_and_holds_all_its_seats() -> None:
    pool = SlotPool(["0", "1"], per_trial=0.5)
    first, second = pool.take(), pool.take()
    on_0, on_1 = first.__enter__(), second.__enter__()  # one trial on each device
    got: list[tuple[str, ...]] = []

    def alone() -> None:
        with pool.take(alone=True) as slot:
            got.append(slot.devices)
            time.sleep(0.5)
            got.append(("company",) if pool.had_company(slot) else ())

    thread = threading.Thread(target=alone)
    thread.start()
    time.sleep(0.3)
    assert got == []
    second.__exit__(None, None, None)  # device 1 empties: the one waiting takes it
    for _ in range(100):  # as soon as its thread runs
        if got:
            break
        time.sleep(0.05)
    assert got[:1] == [on_1.devices]
    with pool.take() as third:  # the only seat left is beside the trial on device 0
        assert third.devices == on_0.devices
        assert pool.had_company(third) and pool.had_company(on_0)
    thread.join(5)
    assert got == [on_1.devices, ()]  # nobody joined it: an out-of-memory there is its own
    first.__exit__(None, None, None)


def test_cuda_out_of_memory_is_told_from_other_errors() -> None:
    assert is_cuda_oom(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_cuda_oom(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert not is_cuda_oom(RuntimeError("CUDA error: an illegal memory access"))
    assert not is_cuda_oom(MemoryError())


def test_device_memory_can_be_given_for_every_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_MEMORY_ENV, "80GB")
    assert device_capacities(["0", "GPU-a1"]) == {"0": 80 * GB, "GPU-a1": 80 * GB}
    assert device_capacities([]) == {}


@pytest.mark.parametrize(
    ("value", "gpus", "says"),
    [
        ("6GB", 1, "'6GB' needs trials that share a GPU, not gpus_per_trial 1"),
        ("6", 0.5, "'6' is not a size"),
        ("0GB", 0.5, "'0GB' is no memory"),
    ],
)
def test_bad_memory_figures_are_refused(value: str, gpus: float, says: str) -> None:
    with pytest.raises(InvalidValue, match=says) as bad:
        parse_gpu_memory(value, gpus)
    assert bad.value.hint is not None and "'auto'" in bad.value.hint
    assert parse_gpu_memory("6GiB", 0.25) == 6 * 2**30 and parse_gpu_memory("auto", 0.5) == "auto"


def test_a_study_file_takes_the_memory_and_names_a_bad_one(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "study_name: t\nobjective: train.py:objective\nn_trials: 2\n"
        "gpus_per_trial: 0.25\ntrials_per_job: 4\ngpu_memory_per_trial: 6GB\n"
    )
    assert load_config(tmp_path / "s.yaml").gpu_memory_per_trial == "6GB"
    (tmp_path / "s.yaml").write_text(
        "study_name: t\nobjective: train.py:objective\nn_trials: 2\ngpu_memory_per_trial: lots\n"
    )
    with pytest.raises(ConfigError, match=r"gpu_memory_per_trial.*'lots' needs trials that share"):
        load_config(tmp_path / "s.yaml")


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    return tmp_path / "home"


def test_run_study_refuses_memory_without_a_share_before_making_anything(
    isolated_home: Path,
) -> None:
    with pytest.raises(InvalidValue, match=r"^gpu_memory_per_trial: '6GB' needs trials that"):
        run_study(objectives.quadratic, n_trials=1, site="local", gpu_memory_per_trial="6GB")
    assert not isolated_home.exists()


def _auto_packed(objective: Objective, n_trials: int, trials_per_job: int) -> list[FrozenTrial]:
    """The trials of a local study at a quarter GPU each, packed by measured peaks (all
    complete)."""
    study = run_study(
        objective, n_trials=n_trials, site="local", gpus_per_trial=0.25,
        trials_per_job=trials_per_job, gpu_memory_per_trial="auto", study_name="packed",
        progress=False,
    )  # fmt: skip
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == n_trials
    return trials


@pytest.mark.usefixtures("isolated_home")
def test_auto_packs_by_the_measured_peaks_on_fake_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Devices of 10 GB take four trials by count, but three of 3 GB by memory (9 of 9)."""
    monkeypatch.setenv(DEVICE_MEMORY_ENV, "10GB")
    trials = _auto_packed(objectives.uses_three_gb, n_trials=14, trials_per_job=8)
    assert {t.user_attrs[GPU_PEAK_ATTR] for t in trials} == {3 * GB}
    peaks = most_at_once({t.number: t.user_attrs for t in trials})
    assert sorted(peaks.values()) == [3, 3]  # both devices reached 3, neither the k of 4


@pytest.mark.usefixtures("isolated_home")
def test_out_of_memory_beside_another_trial_is_retried_alone_and_not_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # one device, two trials on it
    study = run_study(
        objectives.out_of_memory_at_first, n_trials=2, site="local", gpus_per_trial=0.5,
        trials_per_job=2, max_retries=0, study_name="oom", progress=False,
    )  # fmt: skip
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(complete) == 2  # max_retries=0, yet both were retried
    assert [t.user_attrs[OUTCOME_ATTR] for t in failed] == [Outcome.OOM_WHILE_SHARING.value] * 2
    assert all("CUDA out of memory" in t.user_attrs["batchml.reason"] for t in failed)
    for retry in complete:
        first = study.trials[retry.user_attrs[RETRY_OF_ATTR]]
        assert retry.params == first.params and retry.user_attrs[RETRY_ALONE_ATTR]
    assert sorted(most_at_once({t.number: t.user_attrs for t in complete}).values()) == [1]


def test_device_memory_comes_from_a_probe_process_without_nvml(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # nvidia-ml-py absent, as in CI
    monkeypatch.delenv(DEVICE_MEMORY_ENV, raising=False)
    found = device_capacities(["0"])
    if torch.cuda.is_available():  # a GPU machine: torch's figure, read in another process
        assert found == {"0": torch.cuda.get_device_properties(0).total_memory}
    else:
        assert found == {}  # no device: only the k cap will hold


@pytest.mark.gpu
@pytest.mark.usefixtures("isolated_home")
def test_auto_measures_real_peaks_and_packs_a_real_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.delenv(DEVICE_MEMORY_ENV, raising=False)  # NVML's or torch's figure
    trials = _auto_packed(objectives.holds_two_gb_on_cuda, n_trials=8, trials_per_job=4)
    assert all(2 * GB <= t.user_attrs[GPU_PEAK_ATTR] < 2.2 * GB for t in trials)
    assert list(most_at_once({t.number: t.user_attrs for t in trials}).values()) == [4]
