"""An MLflow store made with real MLflow, as users have them, for the import tests.

Registered model 'jets': version 1 a scikit-learn model, version 2 a small
torch MLP pickled (MLflow's format before 3.x, and what existing stores hold),
version 3 another MLP in MLflow's 'pt2' (torch.export) format. Each run logs
a metric and a parameter; version 2 has a description and a tag, the model a
tag; alias 'champion' is on version 2 and version 3 is in the legacy stage
Production. The MLP is defined here, in an importable module, as a user's
model class would be in their package.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import mlflow
import numpy as np
import torch
from mlflow import MlflowClient

NAME = "jets"


class MLP(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class MadeSource:
    """What the test made: the store's URI and what each MLflow version should carry."""

    uri: str
    example: np.ndarray
    run_ids: dict[int, str] = field(default_factory=dict)
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    models: dict[int, MLP] = field(default_factory=dict)


def make_source(uri: str, artifacts: str) -> MadeSource:
    """Log and register the three versions in the store at ``uri`` (artifacts at ``artifacts``)."""
    from sklearn.linear_model import LogisticRegression

    example = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    made = MadeSource(uri, example)
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    # MLflow's own notices (deprecated stages, pickled models) are about writing the
    # source, which the test does as an MLflow user would; the import runs without them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            experiment = mlflow.create_experiment("jets-search", artifact_location=artifacts)
            labels = (example[:, 0] > 0).astype(int)
            bdt = LogisticRegression().fit(example, labels)
            _log(made, experiment, 1, "bdt", 0.81,
                 lambda: mlflow.sklearn.log_model(bdt, name="model", registered_model_name=NAME,
                                                  input_example=example,
                                                  pip_requirements=["scikit-learn"]))  # fmt: skip
            for version, fmt, auc in ((2, "pickle", 0.9), (3, "pt2", 0.92)):
                mlp = MLP(seed=version).eval()
                made.models[version] = mlp
                _log(made, experiment, version, f"mlp-{fmt}", auc,
                     lambda m=mlp, f=fmt: mlflow.pytorch.log_model(
                         m, name="model", registered_model_name=NAME, input_example=example,
                         serialization_format=f, pip_requirements=["torch"]))  # fmt: skip
            client = MlflowClient(uri, uri)
            client.set_registered_model_alias(NAME, "champion", "2")
            client.transition_model_version_stage(NAME, "3", "Production")
            client.set_model_version_tag(NAME, "2", "validated", "yes")
            client.update_model_version(NAME, "2", description="pickled MLP")
            client.set_registered_model_tag(NAME, "team", "jets")
        finally:
            mlflow.set_tracking_uri(previous[0])
            mlflow.set_registry_uri(previous[1])
    return made


def _log(
    made: MadeSource,
    experiment: str,
    version: int,
    kind: str,
    auc: float,
    log: Callable[[], object],
) -> None:
    with mlflow.start_run(experiment_id=experiment, run_name=kind) as run:
        mlflow.log_param("kind", kind)
        mlflow.log_metric("auc", auc)
        log()
    made.run_ids[version] = run.info.run_id
    made.metrics[version] = {"auc": auc}
