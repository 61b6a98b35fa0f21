"""Several sites in one search: the ``sites`` mapping, checked whole, and each site's back-off.

Users have GPUs in more than one place (lxplus's HTCondor, an HPC centre's
Slurm partition, the machine they sit at). ``sites`` maps each site (a name or
a site file's path) to what differs there: how many worker jobs, trials per
job, GPUs per trial, and what each job asks the batch system for (walltime,
GPU model, ...). What a site leaves out comes from the search's top-level
values. Every mistake is named by its field (``sites.hpc.max_jobs``) before any
journal or job exists.

A site that fails (its batch system refuses jobs, its jobs vanish, its workers
stop connecting) is taken out of the search and tried again later, each time
after a longer wait (``Backoff``): a centre in maintenance for hours is not
hammered with jobs, and one back after a minute is used again soon.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from batchml.config.resources import MAX_JOBS
from batchml.config.site_schema import MAX_GPUS
from batchml.config.site_values import GPU_NAME
from batchml.config.units import parse_duration, parse_size
from batchml.config.yaml_files import field_path, field_problem
from batchml.errors import BatchmlError, ConfigError, FieldProblem, InvalidValue
from batchml.hpo.gpu_share import trials_per_gpu
from batchml.hpo.spec import Where

SITES_HINT = (
    "sites maps each site name or site file to its overrides, e.g. "
    "{'lxplus': {'max_jobs': 8, 'gpus_per_trial': 1}, './hpc.yaml': {'trials_per_job': 4}}: "
    "README.md, 'Several sites'"
)
FIRST_RETRY_S = 60.0  # a site that failed is tried again after this, then twice as long each time
LONGEST_RETRY_S = 1800.0


class SiteOverrides(BaseModel):
    """What one site of a search does differently from the search's top-level values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_jobs: int | None = Field(None, ge=1, le=MAX_JOBS)
    trials_per_job: int | None = Field(None, ge=1, le=64)
    gpus_per_trial: float | None = Field(None, ge=0, le=MAX_GPUS)
    worker_patience_s: float | None = Field(None, gt=0)
    # What each worker job asks the batch system for (config/resources.py), beside its GPUs
    walltime: str | None = None
    memory: str | None = None
    gpu_names: list[str] | None = None  # the GPU model, e.g. [A100, H100]
    gpu_memory: str | None = None
    gpu_capability: float | None = None

    @field_validator("gpus_per_trial")
    @classmethod
    def _gpu_share(cls, value: float | None) -> float | None:
        if value is not None:
            trials_per_gpu(value)
        return value

    @field_validator("walltime", "memory", "gpu_memory")
    @classmethod
    def _parses(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A duration or a size that its job's request would refuse is refused here, by name."""
        if value is not None:
            (parse_duration if info.field_name == "walltime" else parse_size)(value)
        return value

    @field_validator("gpu_names")
    @classmethod
    def _gpu_names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if not GPU_NAME.fullmatch(name):
                raise InvalidValue(
                    f"{name!r} is not a GPU model name",
                    hint="use letters, digits, spaces and . _ + -, such as 'A100' or 'H100'",
                )
        return value

    def applied_to(self, where: Where, site: str) -> Where:
        """``where`` on ``site`` with these overrides (what is left out stays as it is)."""
        given = self.model_dump(exclude_none=True)
        resources = {k: given.pop(k) for k in RESOURCE_FIELDS if k in given}
        if "gpu_names" in resources:
            resources["gpu_names"] = tuple(resources["gpu_names"])
        return dataclasses.replace(
            where, site=site, sites=None, resources={**where.resources, **resources}, **given
        )


RESOURCE_FIELDS = ("walltime", "memory", "gpu_names", "gpu_memory", "gpu_capability")


class _Sites(BaseModel):
    """The ``sites`` argument as a field, so its errors read as in a study file."""

    model_config = ConfigDict(extra="forbid")

    sites: dict[str, SiteOverrides]


def site_plan(where: Where, source: str = "run_study's sites argument") -> list[Where]:
    """One ``Where`` per site of the search (``[where]`` itself without ``sites``); ConfigError,
    naming ``source`` and each bad field, when a site or its overrides are wrong."""
    if where.sites is None:
        return [where]
    for clash in ("site", "client"):
        if getattr(where, clash) is not None:
            raise ConfigError(source, [FieldProblem(
                "sites", f"{clash}= and sites= are both given",
                f"name every site in sites (one site: {clash}= alone)",
            )], hint=SITES_HINT)  # fmt: skip
    if not isinstance(where.sites, Mapping) or not where.sites:
        raise ConfigError(source, [FieldProblem(
            "sites", f"{where.sites!r} names no site", "give at least one site: {'local': {}}"
        )], hint=SITES_HINT)  # fmt: skip
    try:
        parsed = _Sites(sites=dict(where.sites)).sites
    except ValidationError as exc:
        problems = [field_problem(e, _Sites, {}, top=source) for e in exc.errors()]
        raise ConfigError(source, problems, hint=SITES_HINT) from None
    plan = [overrides.applied_to(where, site) for site, overrides in parsed.items()]
    check_plan(plan, source)
    return plan


def check_plan(plan: list[Where], source: str) -> None:
    """Each site's request as its cluster would check it, and no site named twice."""
    from batchml.config.site_lookup import load_site
    from batchml.hpo.cluster import check_request

    seen: dict[str, str] = {}
    for where in plan:
        field = field_path(("sites", str(where.site)))
        try:
            name = load_site(where.site).site.name
            check_request(where)
        except BatchmlError as exc:
            if exc.exit_code != ConfigError.exit_code:  # no fault of the input (no GPU here)
                raise
            problem = FieldProblem(field, exc.message, exc.hint or "see `batchml site show`")
            raise ConfigError(source, [problem], hint=SITES_HINT) from None
        if name in seen:
            raise ConfigError(source, [FieldProblem(
                field, f"is site {name!r}, as {seen[name]!r} is",
                "name each site once (give its overrides in one entry)",
            )], hint=SITES_HINT)  # fmt: skip
        seen[name] = str(where.site)


def check_storage(storage: BaseStorage, plan: list[Where]) -> None:
    """Several sites need a journal file or a database: each site's scheduler holds its own
    storage object, and copies of an in-memory storage would each hold a different study."""
    if len(plan) > 1 and not isinstance(storage, JournalStorage | RDBStorage):
        raise InvalidValue(
            f"a {type(storage).__name__} cannot serve several sites: each site's scheduler "
            "would hold a copy of its own",
            hint="leave storage unset (a journal file), or give a journal path or database URL",
        )


@dataclasses.dataclass
class Backoff:
    """When a failed site is tried again: after ``first_s``, then twice as long each time it
    fails again, at most ``longest_s``; a site that ran trials again starts afresh."""

    first_s: float = FIRST_RETRY_S
    longest_s: float = LONGEST_RETRY_S
    failures: int = 0
    retry_at: float | None = None  # None: the site is up
    reason: str = ""

    def fail(self, reason: str, now: float) -> None:
        self.failures += 1
        self.reason = reason
        self.retry_at = now + min(self.longest_s, self.first_s * 2 ** (self.failures - 1))

    def due(self, now: float) -> bool:
        """The site is down and its wait is over: try it again."""
        return self.retry_at is not None and now >= self.retry_at

    def retried(self) -> None:
        self.retry_at = None

    def recovered(self) -> None:
        self.failures = 0
        self.reason = ""

    @property
    def down(self) -> bool:
        return self.retry_at is not None

    def describe(self, name: str, now: float) -> str:
        """``hpc: down, retry in 2 min`` ('' while the site is up)."""
        if self.retry_at is None:
            return ""
        return f"{name}: down, retry in {wait_text(self.retry_at - now)}"


def wait_text(seconds: float) -> str:
    """A wait as people say it: ``40 s``, ``2 min``."""
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    return f"{round(seconds / 60)} min"


def overrides_of(sites: Mapping[str, SiteOverrides] | None) -> dict[str, Any] | None:
    """The ``sites`` mapping of a study file as plain data (for run_study and the stored config)."""
    if sites is None:
        return None
    return {site: given.model_dump(exclude_none=True) for site, given in sites.items()}
