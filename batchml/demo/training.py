"""The demo's model, data splits and HPO objective: a small MLP tagging signal against background.

Each trial runs ``objective`` in its own process (hpo/isolation.py), so it lives
in an importable module and gets its inputs through ``functools.partial``:
the data (``DataSpec``) and the training budget (``Budget``). The trial streams
the training split with ``RootDataset`` and normalises with the ``FeatureStats``
the driver computed once, exactly as the packaged model's ``preprocess.json``
will, so the model takes normalised features both in training and in serving.

The data module splits entries by hash into train and validation; the demo cuts
the validation side once more, by global entry number: even entries are the
validation set the trials report their loss on, odd entries the held-out test
set of the final ROC curve, which neither training nor trial selection sees.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass, replace
from itertools import count, islice
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import optuna
import torch
from torch import nn
from torch.nn import functional

from batchml._fs import replacing
from batchml.data import FeatureStats
from batchml.data.dataset import RootDataset
from batchml.data.stream import Batch
from batchml.errors import InvalidValue
from batchml.hpo import TrialContext

TRAIN_FRACTION = 0.8
RANGE_ENTRIES = 10_000  # small ranges from many files mix signal and background files
CHECKPOINT_ATTR = "demo.checkpoint"
Part = Literal["validation", "test"]
PARITY: dict[Part, int] = {"validation": 0, "test": 1}  # of entry numbers on the validation side

SEARCH_SPACE: dict[str, optuna.distributions.BaseDistribution] = {
    "learning_rate": optuna.distributions.FloatDistribution(1e-4, 3e-2, log=True),
    "width": optuna.distributions.CategoricalDistribution([16, 32, 64, 128]),
    "depth": optuna.distributions.IntDistribution(1, 4),
    "dropout": optuna.distributions.FloatDistribution(0.0, 0.3),
    "batch_size": optuna.distributions.CategoricalDistribution([256, 512, 1024, 2048]),
}


@dataclass(frozen=True)
class DataSpec:
    """Where the events are and what to read: the same for the driver and every trial."""

    files: tuple[str, ...]
    tree: str
    features: tuple[str, ...]
    target: str
    stats_path: str  # FeatureStats JSON of the training split, written by the driver
    weight: str | None = None  # the event-weight branch, read for evaluation (training: unweighted)

    def dataset(self, side: str, **options: Any) -> RootDataset:
        """A RootDataset of one side of the split (``options`` are RootStream's)."""
        return RootDataset(
            list(self.files),
            self.tree,
            features=self.features,
            target=self.target,
            split=(side, TRAIN_FRACTION),
            range_entries=RANGE_ENTRIES,
            **options,
        )


@dataclass(frozen=True)
class Budget:
    """How long a trial trains: a few short epochs keep 16 trials within minutes on 2 cores."""

    epochs: int = 8
    epoch_events: int = 150_000  # training events per reported epoch (a subsample of the split)
    validation_events: int = 40_000


class Classifier(nn.Module):
    """An MLP from normalised features to the probability of signal."""

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
        """Probabilities of shape (batch, 1): one column, as Triton and ONNX consumers expect."""
        return torch.sigmoid(self.net(features))


class Normaliser:
    """``(x - mean) / std`` per feature, as the packager's preprocess.json writes it.

    A constant feature (std 0) passes through centred, as ``norm_factor`` 1 does there.
    """

    def __init__(self, stats: FeatureStats) -> None:
        std = stats.std
        self.mean = stats.mean.astype(np.float32)
        self.factor = np.divide(1.0, std, out=np.ones_like(std), where=std > 0).astype(np.float32)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        normalised: np.ndarray = (features - self.mean) * self.factor
        return normalised


class Events(NamedTuple):
    """Raw features (n, F), targets and event weights (1 without a weight branch)."""

    features: np.ndarray
    target: np.ndarray
    weight: np.ndarray


def read_part(data: DataSpec, part: Part, limit: int | None = None) -> Events:
    """The events of the validation or test part, the same events on every call.

    A fixed seed and epoch 0 make the order of ranges the same everywhere, so
    every trial's validation loss is measured on the same ``limit`` events.
    """
    dataset = data.dataset("validation", output="numpy", batch_size=8192, seed=0,
                           weights=data.weight)  # fmt: skip
    blocks, kept = [], 0
    for batch in dataset:
        keep = batch.entry % 2 == PARITY[part]
        blocks.append((batch.features[keep], batch.target[keep], batch.weight[keep]))
        kept += int(keep.sum())
        if limit is not None and kept >= limit:
            break
    if not kept:
        raise InvalidValue(
            f"the {part} part of {len(data.files)} file(s) holds no events",
            hint="give more events (--events) or more --data files",
        )
    return Events(*(np.concatenate(column)[:limit] for column in zip(*blocks, strict=True)))


@dataclass(frozen=True)
class EventCounts:
    """Events per class, (signal, background), in each part of the split."""

    training: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]


def count_events(data: DataSpec) -> EventCounts:
    """Each part's events per class, from one pass over the target branch of each side."""
    targets = replace(data, features=(data.target,))
    counts = np.zeros(6, dtype=np.int64)  # (training, validation, test) x (signal, background)
    for side in ("train", "validation"):
        # one quick pass: read in this process (prefetch=None), no reading process to start
        batches = targets.dataset(side, output="numpy", batch_size=65_536, shuffle=False,
                                  prefetch=None)  # fmt: skip
        for batch in batches:
            part = 0 if side == "train" else 1 + (batch.entry % 2 == PARITY["test"])
            counts += np.bincount(2 * part + (batch.target <= 0.5), minlength=6)
    pairs = [(int(counts[i]), int(counts[i + 1])) for i in (0, 2, 4)]
    return EventCounts(*pairs)


def objective(trial: Any, ctx: TrialContext, *, data: DataSpec, budget: Budget) -> float:
    """Train one MLP; report the validation loss per epoch; keep the best epoch's checkpoint."""
    torch.set_num_threads(1)  # two trials share two cores: more threads only contend
    torch.manual_seed(trial.number)
    params = trial.params
    normalise = Normaliser(FeatureStats.load(data.stats_path))
    raw_x, raw_y, _ = read_part(data, "validation", budget.validation_events)
    val_x, val_y = torch.from_numpy(normalise(raw_x)), torch.from_numpy(raw_y)
    train = data.dataset("train", output="numpy", batch_size=params["batch_size"],
                         seed=trial.number, shuffle_buffer=50_000)  # fmt: skip
    train_events = int(train.stream.num_entries * TRAIN_FRACTION)
    steps = max(1, min(budget.epoch_events, train_events) // params["batch_size"])
    model = Classifier(len(data.features), params["width"], params["depth"], params["dropout"])
    optimiser = torch.optim.Adam(model.parameters(), lr=params["learning_rate"])
    checkpoint = ctx.checkpoint_dir / "model.pt"
    best = math.inf
    with closing(_endless(train)) as batches:
        for epoch in range(budget.epochs):
            model.train()
            for batch in islice(batches, steps):
                features = torch.from_numpy(normalise(batch.features))
                loss = functional.binary_cross_entropy_with_logits(
                    model.logits(features), torch.from_numpy(batch.target)
                )
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            model.eval()
            with torch.no_grad():
                value = float(
                    functional.binary_cross_entropy_with_logits(model.logits(val_x), val_y)
                )
            trial.report(value, epoch)
            if value < best:
                best = value
                save_checkpoint(model, params, checkpoint)
            if trial.should_prune():
                raise optuna.TrialPruned()
    trial.set_user_attr(CHECKPOINT_ATTR, str(checkpoint))
    return best


def _endless(dataset: RootDataset) -> Generator[Batch, None, None]:
    """Batches across epochs without end: a trial's epoch is a budget of steps, not a full pass."""
    for epoch in count():
        dataset.set_epoch(epoch)
        yield from dataset


def save_checkpoint(model: Classifier, params: dict[str, Any], path: Path) -> None:
    """The weights and the architecture's parameters, replaced atomically (the driver may read)."""
    with replacing(path) as temporary:
        torch.save({"params": dict(params), "state_dict": model.state_dict()}, temporary)


def load_checkpoint(path: str | Path, inputs: int) -> tuple[Classifier, dict[str, Any]]:
    """The trained model (in eval mode) and the trial parameters it was built from."""
    saved = torch.load(path, weights_only=True)
    params = saved["params"]
    model = Classifier(inputs, params["width"], params["depth"], params["dropout"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), params
