"""An analysis-style objective for `batchml hpo run study.yaml`: a small MLP on ROOT ntuples.

Copy this folder, edit data.yaml (where the events are) and study.yaml (the
search), and run it. The search space is drawn from study.yaml before this
function runs, so the objective reads ``trial.params``. It streams the training
split with ``batchml.data.RootDataset``, reports the validation loss after each
epoch (so the pruner can stop bad trials early) and keeps the best epoch's
weights in ``ctx.checkpoint_dir/model.pt``.
"""

from __future__ import annotations

import math
import os
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
import yaml
from torch import nn
from torch.nn import functional

from batchml.data import FeatureStats
from batchml.data.dataset import RootDataset

TRAIN_FRACTION = 0.8  # entries are split by hash: the same events are "train" everywhere
HERE = Path(__file__).resolve().parent


def load_data_config(path: Path = HERE / "data.yaml") -> dict[str, Any]:
    """data.yaml, with relative file paths made absolute (trials run in other folders)."""
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    files = config["files"]
    files = [files] if isinstance(files, str) else list(files)
    config["files"] = [f if "://" in f else str((path.parent / f).resolve()) for f in files]
    return config


# Read here, on the driver: the module's globals travel to the workers with the objective.
DATA = load_data_config()


class MLP(nn.Module):
    """Normalised features -> the probability of signal."""

    def __init__(self, inputs: int, width: int, depth: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index in range(depth):
            layers += [nn.Linear(inputs if index == 0 else width, width), nn.ReLU()]
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width if depth else inputs, 1))
        self.net = nn.Sequential(*layers)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """One logit per event: what the loss takes, for numerical stability."""
        logits: torch.Tensor = self.net(features).squeeze(-1)
        return logits

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Probabilities of shape (batch, 1), as the packager and Triton expect."""
        return torch.sigmoid(self.net(features))


def dataset(side: str, **options: Any) -> RootDataset:
    """One side of the hash split ('train' or 'validation') as numpy batches."""
    return RootDataset(
        DATA["files"],
        DATA["tree"],
        features=DATA["features"],
        target=DATA["target"],
        split=(side, TRAIN_FRACTION),
        output="numpy",
        **options,
    )


def objective(trial: optuna.Trial, ctx: Any) -> float:
    """Train one MLP; return its best validation loss (binary cross-entropy)."""
    params = trial.params
    torch.manual_seed(trial.number)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    device = torch.device("cuda" if ctx.devices and torch.cuda.is_available() else "cpu")

    # Validation events and the normalisation, the same for every trial (fixed seed).
    val_x, val_y = [], []
    for batch in dataset("validation", batch_size=8192, seed=0):
        val_x.append(batch.features)
        val_y.append(batch.target)
        if sum(len(y) for y in val_y) >= DATA["validation_events"]:
            break
    stats = FeatureStats.scan(
        dataset("train", batch_size=8192, seed=0), list(DATA["features"]), max_events=50_000
    )
    mean = stats.mean.astype(np.float32)
    scale = np.divide(1.0, stats.std, out=np.ones_like(stats.std), where=stats.std > 0)
    scale = scale.astype(np.float32)

    def tensor(features: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((features - mean) * scale).to(device)

    x_val = tensor(np.concatenate(val_x))
    y_val = torch.from_numpy(np.concatenate(val_y)).to(device)

    model = MLP(len(DATA["features"]), params["width"], params["depth"], params["dropout"])
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=params["learning_rate"])
    train = dataset(
        "train", batch_size=params["batch_size"], seed=trial.number, shuffle_buffer=20_000
    )
    checkpoint = Path(ctx.checkpoint_dir) / "model.pt"
    best = math.inf
    for epoch in range(DATA["epochs"]):
        train.set_epoch(epoch)
        model.train()
        for batch in islice(train, DATA["steps_per_epoch"]):
            target = torch.from_numpy(batch.target).to(device)
            loss = functional.binary_cross_entropy_with_logits(
                model.logits(tensor(batch.features)), target
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            value = float(functional.binary_cross_entropy_with_logits(model.logits(x_val), y_val))
        trial.report(value, epoch)
        if value < best:
            best = value
            saved = {"params": dict(params), "state_dict": model.state_dict(),
                     "stats": stats.to_dict()}  # fmt: skip
            torch.save(saved, checkpoint)
        if trial.should_prune():
            raise optuna.TrialPruned()
    trial.set_user_attr("checkpoint", str(checkpoint))
    return best


def load_best(study: optuna.Study) -> tuple[MLP, FeatureStats]:
    """The best trial's model (eval mode, on the CPU) and its normalisation, from its checkpoint."""
    saved = torch.load(study.best_trial.user_attrs["checkpoint"], map_location="cpu")
    params, stats = saved["params"], FeatureStats.from_dict(saved["stats"])
    model = MLP(len(stats.columns), params["width"], params["depth"], params["dropout"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), stats


if __name__ == "__main__":  # a quick check of one trial, in this process
    if True:
        study = optuna.create_study()
        space = {
            "learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True),
            "width": optuna.distributions.CategoricalDistribution([32]),
            "depth": optuna.distributions.IntDistribution(1, 2),
            "dropout": optuna.distributions.FloatDistribution(0.0, 0.1),
            "batch_size": optuna.distributions.CategoricalDistribution([512]),
        }

        class _Context:
            devices: tuple[str, ...] = ()
            checkpoint_dir = Path("checkpoints")

        _Context.checkpoint_dir.mkdir(exist_ok=True)
        trial = study.ask(space)
        print("validation loss", objective(trial, _Context()))
