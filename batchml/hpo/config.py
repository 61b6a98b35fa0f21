"""A study as a YAML file: what `batchml hpo run` reads and `hpo resume` finds again.

Validated like site files (unknown keys, wrong types and bad choices name the
field and the fix). The objective is 'package.module:function' or
'path/to/file.py:function' (a file's function travels to workers by value),
or instead a ``command`` such as 'train.py --lr {lr}' (batchml.hpo.command).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import optuna
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from batchml.config.resources import MAX_JOBS
from batchml.config.site_schema import MAX_GPUS
from batchml.config.yaml_files import field_problem, read_yaml_mapping
from batchml.errors import ConfigError, InvalidValue
from batchml.hpo.gpu_memory import parse_gpu_memory
from batchml.hpo.gpu_share import job_gpus, trials_per_gpu
from batchml.hpo.sites import SiteOverrides
from batchml.hpo.storage import check_study_name

STUDY_FILE_HINT = (
    "a study file holds study_name, objective or command, n_trials, and a search_space of "
    "{type: float|int, low, high, log or step} or {type: categorical, choices}: "
    "README.md, 'Hyper-parameter searches'"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Parameter(_Strict):
    """One dimension of the search space, checked whole so Optuna never refuses it mid-study."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.type == "categorical":
            _check_choices(self)
        else:
            _check_range(self)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Optuna warns, then changes 'high' behind the user
            try:
                self.distribution()
            except (ValueError, UserWarning) as exc:
                raise InvalidValue(f"Optuna refuses it: {exc}", hint=_RANGE_HINT) from None
        return self

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.type == "categorical":
            return optuna.distributions.CategoricalDistribution(self.choices or [])
        assert self.low is not None and self.high is not None
        if self.type == "int":
            step = 1 if self.step is None else int(self.step)
            return optuna.distributions.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=step
            )
        return optuna.distributions.FloatDistribution(
            self.low, self.high, log=self.log, step=self.step
        )


_RANGE_HINT = "e.g. {type: float, low: 0.001, high: 0.1, log: true} or {type: int, low: 1, high: 8}"
_CHOICE_TYPES = (str, int, float, bool, type(None))


def _check_choices(p: Parameter) -> None:
    """A categorical parameter: plain values only (Optuna stores them as JSON), nothing else."""
    extra = [k for k in ("low", "high", "step") if getattr(p, k) is not None] + (
        ["log"] if p.log else []
    )
    if extra:
        raise InvalidValue(
            f"{', '.join(extra)} do not apply to a categorical parameter",
            hint="a categorical parameter has only choices: [a, b]",
        )
    if not p.choices:
        raise InvalidValue("a categorical parameter needs choices", hint="add choices: [a, b]")
    for choice in p.choices:
        if not isinstance(choice, _CHOICE_TYPES) or choice != choice:  # choice != choice: nan
            raise InvalidValue(
                f"choice {choice!r} is not text, a number, true/false or null",
                hint="write plain values, e.g. choices: [relu, tanh] or choices: [32, 64]",
            )


def _check_range(p: Parameter) -> None:
    """A float or int parameter: finite low < high, whole numbers for int, log or step."""
    if p.choices is not None:
        raise InvalidValue(
            f"choices apply to categorical parameters, not to {p.type}",
            hint="remove choices, or write type: categorical",
        )
    if p.low is None or p.high is None:
        article = "an" if p.type == "int" else "a"
        raise InvalidValue(f"{article} {p.type} parameter needs low and high", hint=_RANGE_HINT)
    bounds = [p.low, p.high] + ([p.step] if p.step is not None else [])
    if not all(math.isfinite(v) for v in bounds):
        raise InvalidValue("low, high and step must be finite numbers", hint=_RANGE_HINT)
    if p.low >= p.high:
        raise InvalidValue(f"needs low < high, not {p.low} and {p.high}", hint=_RANGE_HINT)
    if p.type == "int" and not all(float(v).is_integer() for v in bounds):
        raise InvalidValue(
            "an int parameter needs whole numbers for low, high and step",
            hint="write e.g. low: 1, high: 8, or use type: float",
        )
    if p.log and p.step is not None:
        raise InvalidValue("a parameter takes log or step, not both", hint="remove one of them")
    if p.log and not (p.low >= 1 if p.type == "int" else p.low > 0):
        raise InvalidValue(
            f"a log scale needs low > 0 (at least 1 for int), not {p.low}",
            hint="raise low, e.g. low: 0.0001, or drop log: true",
        )
    if p.step is not None and p.step <= 0:
        raise InvalidValue(f"step must be above 0, not {p.step}", hint="write e.g. step: 0.1")


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
    sites: dict[str, SiteOverrides] | None = None  # several sites, each with its overrides
    n_trials: int = Field(ge=1, le=100_000)
    direction: Literal["minimize", "maximize"] = "minimize"
    gpus_per_trial: float = Field(0, ge=0, le=MAX_GPUS)  # whole GPUs, or 1/k of one
    gpu_memory_per_trial: str | None = None  # '6GB' or 'auto': see gpu_memory.py
    trials_per_job: int = Field(1, ge=1, le=64)
    max_jobs: int = Field(1, ge=1, le=MAX_JOBS)
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

    @model_validator(mode="after")
    def _site_or_sites(self) -> StudyConfig:
        if self.site is not None and self.sites is not None:
            raise InvalidValue(
                "give site (one site) or sites (several), not both",
                hint="name every site under sites: {lxplus: {max_jobs: 8}, ./hpc.yaml: {}}",
            )
        if self.sites is not None and not self.sites:
            raise InvalidValue("sites names no site", hint="write e.g. sites: {local: {}}")
        return self

    @field_validator("gpus_per_trial")
    @classmethod
    def _gpu_share(cls, value: float) -> float:
        """Whole GPUs stay whole numbers (2, not 2.0), as written in the stored configuration."""
        trials_per_gpu(value)
        return int(value) if value.is_integer() else value

    @field_validator("trials_per_job")
    @classmethod
    def _whole_gpus_per_job(cls, value: int, info: ValidationInfo) -> int:
        """A job of trials sharing GPUs fills whole GPUs (checked once gpus_per_trial is valid)."""
        if "gpus_per_trial" in info.data:
            job_gpus(info.data["gpus_per_trial"], value)
        return value

    @field_validator("gpu_memory_per_trial", mode="before")
    @classmethod
    def _memory_on_a_share(cls, value: Any, info: ValidationInfo) -> Any:
        """A size or 'auto', for trials sharing a GPU (checked once gpus_per_trial is valid;
        before pydantic's type check, so that a bare number is told to carry a unit)."""
        if "gpus_per_trial" in info.data:
            parse_gpu_memory(value, info.data["gpus_per_trial"])
        return value

    @field_validator("study_name")
    @classmethod
    def _study_name(cls, value: str) -> str:
        return check_study_name(value)

    @field_validator("command", mode="before")
    @classmethod
    def _text_or_words(cls, value: Any) -> Any:
        """One message for either form (pydantic would report each member of the union)."""
        words = isinstance(value, list) and all(isinstance(w, str) for w in value)
        if value is not None and not isinstance(value, str) and not words:
            raise InvalidValue(
                f"{value!r} is not a command",
                hint="write it as text, 'train.py --lr {lr}', or as a list of words",
            )
        return value

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
        return {name: p.distribution() for name, p in self.search_space.items()}


def load_config(path: Path) -> StudyConfig:
    """Read and validate a study file; ConfigError names each bad field and its fix."""
    raw = read_yaml_mapping(path, example="study_name: higgs-mlp", hint=STUDY_FILE_HINT)
    try:
        return StudyConfig(**raw)
    except ValidationError as exc:
        top = str(path)
        problems = [field_problem(e, StudyConfig, {}, top=top) for e in exc.errors()]
        raise ConfigError(path, problems, hint=STUDY_FILE_HINT) from None


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
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the user's file, run here: any error of theirs
            del sys.modules[spec.name]
            raise InvalidValue(
                f"objective file {file} fails when loaded: {_first_line(exc)}",
                hint=f"run 'python {file}' to see the whole traceback, and fix it",
            ) from None
        cloudpickle.register_pickle_by_value(module)  # workers cannot import a loose file
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise InvalidValue(
                f"cannot import {module_name!r} for the objective: {exc}",
                hint="install the package, or name a file: 'path/to/train.py:function'",
            ) from None
        except Exception as exc:
            raise InvalidValue(
                f"module {module_name!r} of the objective fails when imported: {_first_line(exc)}",
                hint=f"run 'python -c \"import {module_name}\"' to see the whole traceback",
            ) from None
    objective = getattr(module, function, None)
    if not callable(objective):
        raise InvalidValue(
            f"{module_name} has no function {function!r}", hint="check the name after ':'"
        )
    return objective


def _first_line(exc: BaseException) -> str:
    """'SyntaxError: invalid syntax (train.py, line 3)': enough to find the mistake."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
