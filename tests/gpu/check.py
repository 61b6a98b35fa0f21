"""The steps of tests/gpu/device_check.sh, on the real GPU when there is one, else on CPU.

Each step prints one line that starts with ``check:``; a failed expectation
raises (the shell script stops there). On a machine without CUDA the steps run
their CPU variant and say so: the same code paths, no GPU figures.

  python -m tests.gpu.check all|share [--label TEXT]

``all`` runs every step in one process (imports once: the CPU mode must stay
short); ``share`` alone is what the script reruns with MPS on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np

from batchml.hpo import run_study

INPUTS = 16  # features of the demo-sized MLP the trials train
BATCH = 1024
# Trials per GPU at once. CPU mode: one run of 2 trials per job (its figure means nothing,
# and each run starts a cluster: CI keeps the check short).
SHARES = {"gpu": (1, 2, 4, 8), "cpu": (2,)}
STEPS = {"gpu": 3000, "cpu": 100}  # training steps per trial
TRIALS_PER_SLOT = {"gpu": 3, "cpu": 1}  # trials each concurrent slot runs in a share run


# Set by device_check.sh, which asks nvidia-smi: this process never asks CUDA itself, so
# the driver of a search stays without a CUDA context, as it must.
MODE = "gpu" if os.environ.get("BATCHML_CHECK_MODE") == "gpu" else "cpu"


def _say(step: str, text: str) -> None:
    print(f"check: {step} [{MODE}]: {text}", flush=True)


def demo_mlp(trial: Any, ctx: Any, *, steps: int) -> float:
    """Train the demo's MLP on synthetic events on this trial's device; record where it ran."""
    import torch
    from torch.nn import functional

    from batchml.demo.training import Classifier

    initialised_before = torch.cuda.is_initialized()  # a fresh process: nothing yet
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(1)
    torch.manual_seed(trial.number)
    width = trial.suggest_categorical("width", [32, 64, 128])
    depth = trial.suggest_int("depth", 1, 3)
    model = Classifier(INPUTS, width, depth, 0.1).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(BATCH, INPUTS, device=device)
    y = (x[:, 0] + x[:, 1] > 0).float()
    for _ in range(steps):
        loss = functional.binary_cross_entropy_with_logits(model.logits(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("cuda_before", initialised_before)
    trial.set_user_attr("device", torch.cuda.get_device_name() if device == "cuda" else "cpu")
    trial.set_user_attr("visible", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    return float(loss.detach())


def _study(k: int, n_trials: int, steps: int, name: str) -> tuple[Any, float]:
    """A local study of ``n_trials``, k at once (sharing one GPU in GPU mode); its wall time."""
    per_trial = 1 / k if MODE == "gpu" else 0
    started = time.perf_counter()
    study = run_study(
        partial(demo_mlp, steps=steps), n_trials=n_trials, site="local",
        gpus_per_trial=per_trial, trials_per_job=k, max_jobs=1, study_name=name,
        storage=str(Path(tempfile.mkdtemp()) / "s.journal"), progress=False,
    )  # fmt: skip
    return study, time.perf_counter() - started


def _isolated(trials: list[Any]) -> str:
    """Each trial ran in a process of its own that initialised CUDA itself; the driver did not."""
    import torch

    pids = {t.user_attrs["pid"] for t in trials}
    assert os.getpid() not in pids and len(pids) == len(trials), pids
    assert not any(t.user_attrs["cuda_before"] for t in trials)  # no context came by a fork
    assert not torch.cuda.is_initialized(), "the driver initialised CUDA"
    devices = sorted({t.user_attrs["device"] for t in trials})
    assert MODE == "cpu" or "cpu" not in devices, devices
    return f"{len(pids)} processes on {devices}"


def reader() -> None:
    """The data module's reading process beside a training loop that initialised CUDA first."""
    import torch
    from torch.nn import functional

    from batchml.data import RootDataset
    from batchml.demo.sample import FLAT_FEATURES, write_sample
    from batchml.demo.training import Classifier

    device = "cuda" if MODE == "gpu" else "cpu"
    model = Classifier(len(FLAT_FEATURES), 64, 2, 0.1).to(device)  # CUDA before the fork
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    events = 200_000 if MODE == "gpu" else 10_000
    sample = write_sample(Path(tempfile.mkdtemp()), events, files_per_class=1)
    files = [str(f) for f in (*sample.signal, *sample.background)]
    data = RootDataset(files, sample.tree, features=FLAT_FEATURES, target=sample.target,
                       output="numpy", batch_size=2048, prefetch_in="process")  # fmt: skip
    seen, started = 0, time.perf_counter()
    for batch in data:
        x = torch.from_numpy(np.nan_to_num(batch.features)).to(device)
        y = torch.from_numpy(batch.target).float().to(device)
        loss = functional.binary_cross_entropy_with_logits(model.logits(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        seen += len(batch.target)
    took = time.perf_counter() - started
    assert seen == data.stream.num_entries, (seen, data.stream.num_entries)
    assert np.isfinite(float(loss.detach()))
    _say("reader", f"{seen:,} events read in a forked process and trained on {device}: "
                   f"{seen / took:,.0f} events/s")  # fmt: skip


def share(label: str) -> None:
    """Demo-MLP trials per GPU at 1, 2, 4, 8 at once: trials per hour per GPU, against 1."""
    base: float | None = None
    for k in SHARES[MODE]:
        n = TRIALS_PER_SLOT[MODE] * k
        study, took = _study(k, n, STEPS[MODE], f"check-share-{k}")
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        assert len(done) == n, [t.state for t in study.trials]
        if MODE == "gpu":
            assert {t.user_attrs["visible"] for t in done} == {"0"}, "one device, all trials"
        where = _isolated(done)
        rate = len(done) / took * 3600
        base = rate if k == 1 else base
        against = f", {rate / base:.2f}x one at a time" if base else ""
        unit = MODE.upper()
        _say("share", f"{label}{k} trial(s) per {unit} at once: {rate:,.0f} trials/hour per "
                      f"{unit}{against} ({where})")  # fmt: skip


def package() -> None:
    """A model trained on the device, published, packaged: ONNX validated against torch."""
    import torch
    from torch.nn import functional

    from batchml.demo.training import Classifier
    from batchml.package import BuildOptions, build
    from batchml.registry import Registry

    device = "cuda" if MODE == "gpu" else "cpu"
    torch.manual_seed(0)
    model = Classifier(INPUTS, 64, 2, 0.0).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(BATCH, INPUTS, device=device)
    y = (x[:, 0] > 0).float()
    for _ in range(100):
        loss = functional.binary_cross_entropy_with_logits(model.logits(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    root = Path(tempfile.mkdtemp())
    version = Registry(root / "registry").publish(
        "device-check", model.cpu().eval(), input_example=x[:16].cpu().numpy(),
        input_names=["features"], aliases=["production"],
    )  # fmt: skip
    options = BuildOptions(output_labels=["signal"], bench_seconds=None)
    folder = build(version, root / "package", options)  # raises unless ONNX matches torch
    rule = json.loads((folder / "validation.json").read_text())["model"]["tolerance"]["rule"]
    _say("package", f"trained on {device}, ONNX validated against torch: {rule}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=["all", "share"])
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # trials need not import tests
    share(args.label)
    if args.step == "all":
        reader()
        package()
    return 0


if __name__ == "__main__":
    sys.exit(main())
