"""Trials per device over time in the report, and NVML samples: shown when taken, else absent."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from batchml.cli import main
from batchml.hpo import run_study
from batchml.hpo.gpu_samples import (
    DeviceSample,
    DeviceSampler,
    NvmlUnavailable,
    device_samples,
    read_devices,
    status_lines,
    to_attr,
)
from batchml.hpo.outcome import GPU_SAMPLES_ATTR, HOST_ATTR
from batchml.hpo.report import study_report
from batchml.hpo.storage import open_storage
from batchml.hpo.timeline import devices_figure, lanes, ran, slot_rows, timeline_figure
from tests.unit import hpo_objectives as objectives

GB = 10**9


@pytest.fixture
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """nvidia-ml-py not installed (as in CI): its import fails."""
    monkeypatch.setitem(sys.modules, "pynvml", None)


@pytest.mark.usefixtures("no_nvml")
def test_without_nvml_reading_devices_says_it_is_not_available() -> None:
    with pytest.raises(NvmlUnavailable, match="NVML is not available: nvidia-ml-py is not") as no:
        read_devices(["0"])
    assert no.value.hint is not None and "batchml[gpu]" in no.value.hint
    sampler = DeviceSampler(["0", "1"], every_s=0.01)
    sampler.start()
    time.sleep(0.2)
    assert sampler.during("0", 0, time.time() + 1) == []  # it stopped, and kept nothing


def test_trials_sharing_fake_gpus_are_drawn_on_their_devices_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    journal = tmp_path / "shared.journal"
    run_study(
        objectives.quadratic_for_a_second, n_trials=8, site="local", gpus_per_trial=0.5,
        trials_per_job=4, study_name="shared", storage=str(journal), progress=False,
    )  # fmt: skip
    study = optuna.load_study(
        study_name="shared", storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    trials = ran(study)
    rows = slot_rows(trials)
    assert sorted({r.split(" · ", 1)[1] for r in rows.values()}) == [
        "worker 1 · GPU 0", "worker 1 · GPU 1"
    ]  # one row per device, whatever the host  # fmt: skip
    lane = lanes(trials, rows)
    for device in set(rows.values()):
        assert sorted({lane[n] for n, r in rows.items() if r == device}) == [0, 1]  # two at once
    figure = timeline_figure(study)
    assert figure is not None and "stacked on its row (at most 2 at once)" in figure.caption
    assert devices_figure(study) is None  # no NVML here: no samples, and nothing said
    page = study_report(study).html(tmp_path)
    assert "GPU memory used" not in page and "NVML" not in page
    assert main(["hpo", "status", "shared", "--storage", str(journal)]) == 0
    assert "GB used" not in capsys.readouterr().out


def _sample(device: str, at: float, used_gb: float, busy: int) -> DeviceSample:
    return DeviceSample(device, at, int(used_gb * GB), 80 * GB, busy)


def test_samples_carried_by_trials_are_drawn_and_shown_once_per_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "sampled.journal"
    study = optuna.create_study(study_name="sampled", storage=open_storage(str(journal), "sampled"))
    t0 = float(round(time.time()))  # stored to a tenth of a second
    shared = [_sample("0", t0 + 5 * i, 10 + i, 40 + 10 * i) for i in range(4)]
    for taken in (shared[:3], shared[1:]):  # two trials sharing device 0 overlap
        trial = study.ask()
        trial.set_user_attr(HOST_ATTR, "gpu07.cern.ch")
        trial.set_user_attr(GPU_SAMPLES_ATTR, [to_attr(taken)])
        study.tell(trial, 1.0)
    assert device_samples(study.trials) == {"gpu07 · GPU 0": shared}  # each sample once
    assert status_lines(study.trials) == [
        f"gpu07 · GPU 0: 13.0 of 80.0 GB used, 70 % busy "
        f"(sampled {time.strftime('%H:%M:%S', time.localtime(shared[-1].time))}; 4 samples)"
    ]
    figure = devices_figure(study)
    assert figure is not None and "sampled by the workers through NVML" in figure.caption
    assert main(["hpo", "status", "sampled", "--storage", str(journal)]) == 0
    assert "gpu07 · GPU 0: 13.0 of 80.0 GB used, 70 % busy" in capsys.readouterr().out
    assert study.trials[0].state == TrialState.COMPLETE


def test_a_long_trial_keeps_at_most_240_of_its_samples() -> None:
    many = [_sample("GPU-a1", float(i), 1, 50) for i in range(1000)]
    stored = to_attr(many)
    assert stored["device"] == "GPU-a1" and stored["total"] == 80 * GB
    assert len(stored["samples"]) == 200 and stored["samples"][1][0] == 5.0  # every 5th


@pytest.mark.gpu
def test_a_real_gpu_is_sampled_through_nvml() -> None:
    pytest.importorskip("pynvml", reason="the device check carries nvidia-ml-py")
    (sample,) = read_devices(["0"])
    assert sample.device == "0" and 0 < sample.memory_used < sample.memory_total
    assert sample.utilisation is not None and 0 <= sample.utilisation <= 100
