"""The best trial of a study, as a registry version, in one call.

The lineage a reviewer asks for ("which study, which trial, on which node,
which GPU, after how many trials?") is in the study already; this copies it
into the version so it survives the study's journal being deleted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from batchml.hpo.outcome import ATTEMPT_ATTR, DEVICES_ATTR, HOST_ATTR
from batchml.registry import Registry
from batchml.registry.version import ModelVersion


def publish_best(
    study: optuna.Study,
    registry: Registry | str | os.PathLike[str],
    name: str,
    model: object,
    *,
    metrics: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    aliases: Sequence[str] = ("production",),
    **publish: Any,
) -> ModelVersion:
    """Publish ``model`` (the best trial's) with the trial's value, parameters and lineage.

    ``publish`` takes Registry.publish's other keywords (input_example, preprocessing, ...).
    """
    best = study.best_trial
    found = {
        "hpo_study": study.study_name,
        "hpo_trial": best.number,
        "hpo_run": {
            "host": best.user_attrs.get(HOST_ATTR),
            "devices": best.user_attrs.get(DEVICES_ATTR),
            "attempt": best.user_attrs.get(ATTEMPT_ATTR, 1),
            "trials_in_study": len(study.trials),
        },
    }
    store = registry if isinstance(registry, Registry) else Registry(registry)
    return store.publish(
        name,
        model,
        metrics={"objective": best.value, **(metrics or {})},
        params={**best.params, **publish.pop("params", {})},
        lineage={**found, **(lineage or {})},
        aliases=aliases,
        **publish,
    )
