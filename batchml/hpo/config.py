"""A study as a YAML file: what `batchml hpo run` reads and `hpo resume` finds again.

Validated like site files (unknown keys, wrong types and bad choices name the
field and the fix). The objective is 'package.module:function' or
'path/to/file.py:function' (a file's function travels to workers by value),
or instead a ``command`` such as 'train.py --lr {lr}' (batchml.hpo.command).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from batchml.config.yaml_files import field_problem, read_yaml_mapping
from batchml.errors import ConfigError, InvalidValue
from batchml.hpo.storage import check_study_name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Parameter(_Strict):
    """One dimension of the search space."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    def distribution(self, name: str) -> optuna.distributions.BaseDistribution:
        if self.type == "categorical":
            if not self.choices:
                raise InvalidValue(
                    f"{name}: a categorical parameter needs choices", hint="add choices: [a, b]"
                )
            return optuna.distributions.CategoricalDistribution(self.choices)
        if self.low is None or self.high is None or self.low >= self.high:
            raise InvalidValue(f"{name}: needs low < high", hint="e.g. low: 0.001, high: 0.1")
        if self.type == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return optuna.distributions.FloatDistribution(
            self.low, self.high, log=self.log, step=self.step
        )


class Sampler(_Strict):
    name: Literal["tpe", "random", "cmaes", "qmc"] = "tpe"
    seed: int | None = None

    def build(self) -> optuna.samplers.BaseSampler:
        kinds = {
            "tpe": optuna.samplers.TPESampler,
            "random": optuna.samplers.RandomSampler,
            "cmaes": optuna.samplers.CmaEsSampler,
            "qmc": optuna.samplers.QMCSampler,
        }
        return kinds[self.name](seed=self.seed)


class Pruner(_Strict):
    name: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(5, ge=0)
    n_warmup_steps: int = Field(0, ge=0)

    def build(self) -> optuna.pruners.BasePruner:
        if self.name == "median":
            return optuna.pruners.MedianPruner(self.n_startup_trials, self.n_warmup_steps)
        if self.name == "hyperband":
            return optuna.pruners.HyperbandPruner()
        return optuna.pruners.NopPruner()


class StudyConfig(_Strict):
    """Everything run_study needs, as data."""

    study_name: str
    objective: str | None = None
    command: str | list[str] | None = None  # e.g. "train.py --lr {lr}"; see hpo.command
    site: str | None = None
    n_trials: int = Field(ge=1, le=100_000)
    direction: Literal["minimize", "maximize"] = "minimize"
    gpus_per_trial: int = Field(0, ge=0, le=64)
    trials_per_job: int = Field(1, ge=1, le=64)
    max_jobs: int = Field(1, ge=1, le=10_000)
    max_retries: int = Field(1, ge=0, le=10)
    storage: str | None = None
    sampler: Sampler = Sampler()
    pruner: Pruner = Pruner()
    search_space: dict[str, Parameter] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_objective(self) -> StudyConfig:
        if (self.objective is None) == (self.command is None):
            raise InvalidValue(
                "give exactly one of objective and command",
                hint="objective: 'train.py:objective' (a function) or "
                "command: 'train.py --lr {lr}' (a script that calls batchml.trial_report.report)",
            )
        return self

    @field_validator("study_name")
    @classmethod
    def _study_name(cls, value: str) -> str:
        return check_study_name(value)

    @field_validator("objective")
    @classmethod
    def _module_colon_function(cls, value: str | None) -> str | None:
        if value is None:
            return None
        module, sep, function = value.rpartition(":")
        if not sep or not module or not function.isidentifier():
            raise InvalidValue(
                f"{value!r} does not name a function",
                hint="write 'package.module:function' or 'path/to/train.py:function'",
            )
        return value

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {name: p.distribution(name) for name, p in self.search_space.items()}


def load_config(path: Path) -> StudyConfig:
    """Read and validate a study file; ConfigError names each bad field and its fix."""
    raw = read_yaml_mapping(path, example="study_name: higgs-mlp")
    try:
        return StudyConfig(**raw)
    except ValidationError as exc:
        top = str(path)
        problems = [field_problem(e, StudyConfig, {}, top=top) for e in exc.errors()]
        raise ConfigError(path, problems) from None


def objective_of(config: StudyConfig, base: Path) -> Any:
    """The study's objective: the named function, or its command (paths relative to base)."""
    if config.command is not None:
        from batchml.hpo.command import CommandObjective

        return CommandObjective(config.command, config.search_space, base)
    assert config.objective is not None
    return load_objective(config.objective, base)


def load_objective(reference: str, base: Path) -> Any:
    """The objective function named 'module:function' or 'file.py:function' (relative to base)."""
    import cloudpickle

    module_name, _, function = reference.rpartition(":")
    if module_name.endswith(".py"):
        file = (base / module_name).resolve()
        if not file.is_file():
            raise InvalidValue(
                f"objective file {file} does not exist", hint="check the path in objective:"
            )
        spec = importlib.util.spec_from_file_location(f"batchml_objective_{file.stem}", file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        cloudpickle.register_pickle_by_value(module)  # workers cannot import a loose file
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise InvalidValue(
                f"cannot import {module_name!r} for the objective: {exc}",
                hint="install the package, or name a file: 'path/to/train.py:function'",
            ) from None
    objective = getattr(module, function, None)
    if not callable(objective):
        raise InvalidValue(
            f"{module_name} has no function {function!r}", hint="check the name after ':'"
        )
    return objective
