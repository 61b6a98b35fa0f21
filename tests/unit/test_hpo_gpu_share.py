"""A share of a GPU per trial: which values mean what, and which device each trial gets."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from batchml.config.site_schema import SlurmSettings
from batchml.errors import ConfigError, InvalidValue
from batchml.hpo import run_study
from batchml.hpo.config import load_config
from batchml.hpo.gpu_share import job_gpus, job_request, trials_per_gpu
from batchml.hpo.slots import NoFreeSlotError, Slot, SlotPool
from tests.unit import hpo_objectives as objectives


@pytest.mark.parametrize(
    ("gpus_per_trial", "k"), [(0, 1), (1, 1), (2, 1), (0.5, 2), (0.25, 4), (0.125, 8), (1 / 64, 64)]
)
def test_whole_gpus_or_a_share_one_over_k(gpus_per_trial: float, k: int) -> None:
    assert trials_per_gpu(gpus_per_trial) == k


@pytest.mark.parametrize("refused", [0.3, 1 / 3, 0.75, 1.5, -1, 1 / 128])
def test_other_fractions_are_refused_with_the_values_allowed(refused: float) -> None:
    with pytest.raises(InvalidValue, match="nor a share 1/k of one GPU") as bad:
        trials_per_gpu(refused)
    assert bad.value.hint is not None and "0.5, 0.25, 0.125" in bad.value.hint


def test_a_job_holds_the_whole_gpus_its_trials_fill() -> None:
    assert job_gpus(0.25, 8) == 2  # 4 trials on each of 2 GPUs
    assert job_gpus(0.5, 2) == 1
    assert job_gpus(2, 3) == 6
    assert job_gpus(0, 4) == 0
    with pytest.raises(InvalidValue, match="3 leaves part of a GPU unused") as bad:
        job_gpus(0.5, 3)
    assert bad.value.hint == "make trials_per_job a multiple of 2, e.g. trials_per_job=2"


def test_shared_devices_fill_evenly_and_never_hold_more_than_k() -> None:
    pool = SlotPool(["0", "1"], per_trial=0.5)
    with ExitStack() as held:
        taken = [held.enter_context(pool.take()) for _ in range(4)]
        assert [s.devices for s in taken] == [("0",), ("1",), ("0",), ("1",)]
        assert len({s.number for s in taken}) == 4  # one row each in the report
        with pytest.raises(NoFreeSlotError), pool.take():
            pass
    with pool.take() as first, pool.take() as second:
        assert {first.devices, second.devices} == {("0",), ("1",)}


def test_a_freed_seat_is_taken_on_the_device_that_freed_it() -> None:
    pool = SlotPool(["GPU-a", "GPU-b"], per_trial=0.25)
    with ExitStack() as held:
        for _ in range(7):
            held.enter_context(pool.take())
        with pool.take() as last:  # the eighth seat: the one left on GPU-b
            assert last.devices == ("GPU-b",)
        with pool.take() as again:
            assert again == Slot(last.number, ("GPU-b",))


def test_whole_gpus_keep_their_groups() -> None:
    pool = SlotPool(["0", "1", "2", "3"], per_trial=2)
    with pool.take() as first, pool.take() as second:
        assert (first, second) == (Slot(0, ("0", "1")), Slot(1, ("2", "3")))


def _study_file(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "s.yaml").write_text(
        f"study_name: t\nobjective: train.py:objective\nn_trials: 2\n{extra}"
    )
    return tmp_path / "s.yaml"


def test_a_study_file_takes_a_share_and_keeps_whole_gpus_whole(tmp_path: Path) -> None:
    shared = load_config(_study_file(tmp_path, "gpus_per_trial: 0.25\ntrials_per_job: 8\n"))
    assert (shared.gpus_per_trial, shared.trials_per_job) == (0.25, 8)
    whole = load_config(_study_file(tmp_path, "gpus_per_trial: 2\n"))
    assert whole.model_dump(mode="json")["gpus_per_trial"] == 2  # stored as written, not 2.0


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("gpus_per_trial: 0.3\n", "gpus_per_trial: 0.3 is neither a whole number of GPUs"),
        ("gpus_per_trial: 0.5\ntrials_per_job: 3\n", "trials_per_job: 3 leaves part of a GPU"),
    ],
)
def test_a_study_file_names_the_bad_field(tmp_path: Path, extra: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_config(_study_file(tmp_path, extra))


def test_run_study_refuses_a_bad_share_before_making_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    with pytest.raises(InvalidValue, match=r"^gpus_per_trial: 0\.3 is neither"):
        run_study(objectives.quadratic, n_trials=1, site="local", gpus_per_trial=0.3)
    with pytest.raises(InvalidValue, match=r"^trials_per_job: 1 leaves part of a GPU unused"):
        run_study(objectives.quadratic, n_trials=1, site="local", gpus_per_trial=0.5)
    assert not (tmp_path / "home").exists()


def _slurm(text: str) -> SlurmSettings:
    return SlurmSettings.model_validate(yaml.safe_load(text))


def test_a_job_asks_whole_gpus_shards_of_one_gpu_or_a_mig_slice_per_trial() -> None:
    shard = _slurm("{gpu_share: shard, shards_per_gpu: 8}")
    assert job_request(0.25, 4, shard) == (8, "shard")  # 4 trials of 2 shards: one GPU's 8
    assert job_request(1, 2, shard) == (2, "gpu")  # whole GPUs stay whole on any site
    assert job_request(0.25, 8, None) == (2, "gpu")  # no Slurm site: shared inside the job
    assert job_request(0.25, 8, _slurm("{}")) == (2, "gpu")
    assert job_request(0.5, 4, _slurm("{gpu_share: mig, mig_profile: 3g.40gb}")) == (4, "mig")


def test_shards_that_cannot_hold_the_trials_are_refused_naming_the_field() -> None:
    shard = _slurm("{gpu_share: shard, shards_per_gpu: 6}")
    with pytest.raises(
        InvalidValue, match=r"^trials_per_job: 4 trials of 1/2 GPU need the shards of 2"
    ) as bad:
        job_request(0.5, 4, shard)
    assert bad.value.hint == "use trials_per_job=2, and max_jobs for more trials at once"
    with pytest.raises(
        InvalidValue, match=r"^gpus_per_trial: 1/4 of a GPU is no whole number of the site's 6"
    ):
        job_request(0.25, 4, shard)
