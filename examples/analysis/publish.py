"""Publish the best trial of study.yaml's study to the registry, as NAME@production.

    python publish.py                 # registry: $BATCHML_REGISTRY, else the user's default
    python publish.py --root registry

Then: batchml registry list; batchml package build example-mlp@production -o package
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import optuna
import yaml
from train import load_best

from batchml.cli.registry import default_root
from batchml.hpo import publish_best
from batchml.hpo.storage import open_storage

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="registry folder")
    parser.add_argument("--name", default=None, help="model name (default: the study's)")
    args = parser.parse_args()
    config = yaml.safe_load((HERE / "study.yaml").read_text())
    name = config["study_name"]
    study = optuna.load_study(study_name=name, storage=open_storage(config.get("storage"), name))
    model, stats = load_best(study)
    version = publish_best(
        study, args.root or default_root(), args.name or name, model,
        input_example=np.zeros((8, len(stats.columns)), np.float32),  # normalised features
        input_names=["features"], variables={"features": list(stats.columns)},
        preprocessing=stats.to_dict(),  # mean and std per feature: preprocess.json
        description=f"best of {len(study.trials)} trials of {name}",
    )  # fmt: skip
    print(f"published {version.uri} with alias production")


if __name__ == "__main__":
    main()
