"""The files the bad-input battery's command lines point at, built once and copied per case.

Each is real (a registry written by ``Registry.publish``, Optuna journals,
a ROOT file written by uproot) so that a command gets past "no such file" and
meets the bad value the case is about.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

REGISTRY = "reg"  # model 'jets' versions 1 and 2 (production -> 2), model 'bytes' version 1
JOURNAL = "s.journal"  # studies 'pending' (no trial completed), 'done' (one), 'foreign'
# (not run by `hpo run`), 'stale' and 'nobase' (a stored study file that is invalid)
ROOT_FILE = "events.root"  # tree 'events': float branches x and y, int branch label
FAKE_PACKAGE = "fakepkg"  # metadata.json and a model.onnx that is not ONNX
SERVABLE = "servable"  # a Triton repository with one (empty) model, enough to reach serve's checks
FAKE_SERVER = "fake-tritonserver"  # an executable that exits at once: never reached by a case
GARBAGE = b"\x00\xff\xfe\x89PNG\r\n\x1a\n\x00binary\x80\x81\xc3\x28" * 64


def build(folder: Path) -> None:
    """Write every shared fixture into ``folder``."""
    _registry(folder / REGISTRY)
    _journal(folder / JOURNAL)
    _root_file(folder / ROOT_FILE)
    _fake_package(folder / FAKE_PACKAGE)
    _servable(folder / SERVABLE, folder / FAKE_SERVER)
    (folder / "garbage.bin").write_bytes(GARBAGE)
    (folder / "empty.txt").write_text("")
    (folder / "folder").mkdir()


def copy(source: Path, destination: Path, names: tuple[str, ...]) -> None:
    """Copy the named fixtures from the built ``source`` folder into a case's work folder."""
    for name in names:
        if (source / name).is_dir():
            shutil.copytree(source / name, destination / name, symlinks=True)
        else:
            shutil.copy2(source / name, destination / name)


def _registry(root: Path) -> None:
    from batchml.registry import Registry

    registry = Registry(root)
    registry.publish("jets", b"one", metrics={"auc": 0.8}, params={"lr": 0.1})
    registry.publish("jets", b"two", metrics={"auc": 0.9}, params={"lr": 0.01})
    registry.alias("jets", "production", 2)
    registry.publish("bytes", b"not a torch model")


def _journal(path: Path) -> None:
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    from batchml.cli.hpo import CONFIG_ATTR

    storage = JournalStorage(JournalFileBackend(str(path)))
    space = {"lr": FloatDistribution(1e-4, 1e-1, log=True)}
    pending = optuna.create_study(study_name="pending", storage=storage)
    pending.add_trial(
        optuna.trial.create_trial(params={"lr": 0.01}, distributions=space, state=TrialState.FAIL)
    )
    done = optuna.create_study(study_name="done", storage=storage)
    done.add_trial(optuna.trial.create_trial(params={"lr": 0.01}, distributions=space, value=0.5))
    optuna.create_study(study_name="foreign", storage=storage)
    stale = optuna.create_study(study_name="stale", storage=storage)
    stale.set_user_attr(CONFIG_ATTR, {"study_name": "stale", "n_trials": 0, "base": "/"})
    optuna.create_study(study_name="nobase", storage=storage).set_user_attr(CONFIG_ATTR, "x")


def _root_file(path: Path) -> None:
    import uproot

    rows = 100
    with uproot.recreate(path) as out:
        out["events"] = {
            "x": np.linspace(0, 1, rows, dtype=np.float32),
            "y": np.linspace(1, 2, rows, dtype=np.float32),
            "label": np.arange(rows, dtype=np.int32) % 2,
        }


def _fake_package(folder: Path) -> None:
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({"max_batch": 8}))
    (folder / "model.onnx").write_bytes(GARBAGE)


def _servable(folder: Path, server: Path) -> None:
    model = folder / "triton" / "m"
    model.mkdir(parents=True)
    (model / "config.pbtxt").write_text('name: "m"\nbackend: "onnxruntime"\n')
    (folder / "metadata.json").write_text(json.dumps({"name": "m", "max_batch": 8}))
    server.write_text("#!/bin/sh\nexit 3\n")
    server.chmod(0o755)
