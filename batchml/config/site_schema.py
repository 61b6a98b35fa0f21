"""The Site: everything batchml needs to know about a batch system, as validated data.

A site admin writes it once (site_configs/*.yaml); users pick it by name and
override what they need. Validation is strict (unknown keys are errors, sizes
and durations need units) because a typo in a site file otherwise surfaces
hours later as a held job. Finding and merging the files is in site_lookup.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
)

from batchml.config.site_values import (
    ClassAdName,
    EnvName,
    GpuName,
    ImageRef,
    SbatchOption,
    ScriptText,
    SitePath,
    SlurmConstraint,
    SlurmName,
    Token,
    check_classad_entry,
)
from batchml.config.units import format_duration, format_size, is_count, parse_duration, parse_size
from batchml.errors import InvalidValue

# lxplus job flavours and the longest walltime each allows.
JOB_FLAVOURS: dict[str, timedelta] = {
    "espresso": timedelta(minutes=20),
    "microcentury": timedelta(hours=1),
    "longlunch": timedelta(hours=2),
    "workday": timedelta(hours=8),
    "tomorrow": timedelta(days=1),
    "testmatch": timedelta(days=3),
    "nextweek": timedelta(weeks=1),
}

Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]
Port = Annotated[int, Field(ge=1024, le=65535)]
# The largest request any job may make, in a site file or on the command line (resources.py).
MAX_CORES = 1024
MAX_GPUS = 64
MAX_SHARDS = 64  # Slurm shards of one GPU a site may declare (no trial is smaller than 1/64)
GPU_CAPABILITIES = (1.0, 20.0)  # CUDA compute capability: 3.5 (Kepler) ... 12.x (Blackwell)


class _Section(BaseModel):
    """Strict: an unknown key is an error, and the model is read-only once built."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class JobDefaults(_Section):
    """What one batch job asks for when the caller does not say."""

    cores: int = Field(1, ge=1, le=MAX_CORES)
    memory: Size = parse_size("2GB")
    disk: Size = parse_size("10GB")
    gpus: int = Field(0, ge=0, le=MAX_GPUS)
    gpu_capability: float | None = Field(None, ge=GPU_CAPABILITIES[0], le=GPU_CAPABILITIES[1])
    gpu_memory: Size | None = None
    gpu_names: tuple[GpuName, ...] = ()
    walltime: Duration = timedelta(hours=1)


class HTCondorSettings(_Section):
    """Submit-description settings only an HTCondor site has."""

    job_flavour: str | None = None
    want_os: Token | None = None
    spool: bool = False
    send_credential: Literal["auto", "always", "never"] = "auto"
    schedd: Token | None = None
    accounting_group: Token | None = None
    extra_attributes: dict[ClassAdName, str] = Field(default_factory=dict)
    # Only on the dask worker jobs of a search or `cluster up`, not on plain jobs: how a
    # pool tells worker jobs apart (lxplus routes them by MY.IsDaskWorker).
    worker_attributes: dict[ClassAdName, str] = Field(default_factory=dict)

    @field_validator("job_flavour")
    @classmethod
    def _known_flavour(cls, value: str | None) -> str | None:
        if value is not None and value not in JOB_FLAVOURS:
            raise InvalidValue(
                f"{value!r} is not an lxplus job flavour",
                hint=f"use one of {', '.join(JOB_FLAVOURS)}, or leave it out",
            )
        return value

    @field_validator("extra_attributes", "worker_attributes")
    @classmethod
    def _classad_values(cls, value: dict[str, str]) -> dict[str, str]:
        for name, expression in value.items():
            check_classad_entry(name, expression)
        return value


class SlurmSettings(_Section):
    """sbatch options only a Slurm site has."""

    partition: SlurmName | None = None
    account: SlurmName | None = None
    qos: SlurmName | None = None
    constraint: SlurmConstraint | None = None
    gpu_type: SlurmName | None = None
    gpu_directive: Literal["gres", "gpus-per-node"] = "gres"
    memory_directive: Literal["mem", "mem-per-gpu"] = "mem"
    signal_before_timeout: Duration | None = timedelta(minutes=5)
    extra_directives: tuple[SbatchOption, ...] = ()
    # How trials given a share of a GPU (gpus_per_trial 1/k) are asked for: whole GPUs that
    # batchml shares inside the job, the site's shards of a GPU, or MIG slices of one profile
    # (batchml.hpo.gpu_share). Sites that lend light jobs only shards or slices say so here.
    gpu_share: Literal["gpus", "shard", "mig"] = "gpus"
    shards_per_gpu: int | None = Field(None, ge=1, le=MAX_SHARDS, validate_default=True)
    mig_profile: SlurmName | None = Field(None, validate_default=True)

    @field_validator("shards_per_gpu", "mig_profile")
    @classmethod
    def _given_with_its_share(cls, value: Any, info: ValidationInfo) -> Any:
        """shards_per_gpu goes with gpu_share shard, mig_profile with mig: each needs the other."""
        share = info.data.get("gpu_share")
        own = "shard" if info.field_name == "shards_per_gpu" else "mig"
        example = "4" if own == "shard" else "1g.18gb"
        if value is None and share == own:
            raise InvalidValue(
                f"gpu_share {own!r} needs {info.field_name}",
                hint=f"add {info.field_name}: {example} (as the site's gres.conf has it)",
            )
        if value is not None and share is not None and share != own:
            raise InvalidValue(
                f"{info.field_name} is set but gpu_share is {share!r}",
                hint=f"set gpu_share: {own}, or remove {info.field_name}",
            )
        return value


class Container(_Section):
    """The image jobs run in; on lxplus an unpacked image under /cvmfs/unpacked.cern.ch."""

    image: ImageRef | None = None
    runtime: Literal["apptainer", "docker"] = "apptainer"
    bind: tuple[SitePath, ...] = ()


class Environment(_Section):
    """How a job gets a Python with batchml in it: at most one of LCG view, venv or conda."""

    lcg_view: SitePath | None = None
    venv: SitePath | None = None
    conda: ScriptText | None = None
    variables: dict[EnvName, ScriptText] = Field(default_factory=dict)
    setup_commands: tuple[ScriptText, ...] = ()  # shell code by design, one line each

    @field_validator("venv", "conda")
    @classmethod
    def _one_setup(cls, value: str | None, info: ValidationInfo) -> str | None:
        earlier = [k for k in ("lcg_view", "venv") if k != info.field_name and info.data.get(k)]
        if value and earlier:
            raise InvalidValue(
                f"{info.field_name} is set together with {earlier[0]}",
                hint="keep only one of lcg_view, venv and conda",
            )
        return value


class Network(_Section):
    """Where the dask scheduler listens and which ports workers may use (lxplus firewalls)."""

    interface: Token | None = None
    scheduler_port: Annotated[int, Field(ge=0, le=65535)] = 0
    dashboard: bool = False  # dask's dashboard, unauthenticated: on the interface, if asked
    dashboard_port: Port | None = None
    worker_ports: tuple[Port, Port] | None = None

    @field_validator("dashboard_port")
    @classmethod
    def _dashboard_on(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("dashboard"):
            raise InvalidValue(
                f"a dashboard port ({value}) is set but the dashboard is off",
                hint="add 'dashboard: true' to the network section, or remove dashboard_port",
            )
        return value

    @field_validator("worker_ports", mode="before")
    @classmethod
    def _range_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            low, sep, high = value.partition("-")
            if not sep or not is_count(low.strip()) or not is_count(high.strip()):
                raise InvalidValue(
                    f"{value!r} is not a port range", hint="write it as '40000-40100'"
                )
            return (int(low), int(high))
        return value

    @field_validator("worker_ports")
    @classmethod
    def _ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and value[0] > value[1]:
            raise InvalidValue(
                f"port range {value[0]}-{value[1]} is empty", hint="put the lower port first"
            )
        return value


class Paths(_Section):
    """Folders; '~' and $VARIABLES are expanded where the job runs, not here.

    Trials get a private folder of their own under ``scratch_dir`` (see
    batchml.hpo.scratch), removed when they end unless ``keep_scratch``.
    """

    log_dir: SitePath = "~/.cache/batchml/logs"
    scratch_dir: SitePath = "${TMPDIR:-/tmp}"
    keep_scratch: bool = False
    shared_dir: SitePath | None = None
    registry_root: SitePath = "~/.local/share/batchml/registry"


class XRootD(_Section):
    """Where data live and how jobs authenticate to read them."""

    redirector: str | None = None
    auth: Literal["none", "krb5", "x509", "token", "unix"] = "none"
    token_file: SitePath | None = None

    @field_validator("redirector")
    @classmethod
    def _root_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"roots?://[A-Za-z0-9.-]+(:[0-9]+)?/?", value):
            raise InvalidValue(
                f"{value!r} is not an XRootD redirector",
                hint="write a server URL such as 'root://eosuser.cern.ch'",
            )
        return value


class Site(_Section):
    """A validated site. ``name`` comes from the file name, not from its content."""

    name: str
    description: str = ""
    scheduler: Literal["htcondor", "slurm", "local"]
    defaults: JobDefaults = JobDefaults()
    htcondor: HTCondorSettings | None = None
    slurm: SlurmSettings | None = None
    container: Container = Container()
    environment: Environment = Environment()
    network: Network = Network()
    paths: Paths = Paths()
    xrootd: XRootD = XRootD()
    # CUDA MPS: each worker job runs its own MPS daemon, so the trials sharing its GPUs run
    # their kernels side by side instead of taking turns (batchml.backends._worker).
    mps: bool = False

    @field_validator("mps")
    @classmethod
    def _mps_in_worker_jobs(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("scheduler") == "local":
            raise InvalidValue(
                "mps is on for a local site, which starts no worker job to run the MPS daemon",
                hint="start 'nvidia-cuda-mps-control -d' yourself, or use mps on a Slurm or "
                "HTCondor site",
            )
        return value

    @field_validator("htcondor", "slurm")
    @classmethod
    def _matches_scheduler(cls, value: Any, info: ValidationInfo) -> Any:
        scheduler = info.data.get("scheduler")
        if value is not None and scheduler is not None and info.field_name != scheduler:
            raise InvalidValue(
                f"a '{info.field_name}' section on a site whose scheduler is {scheduler!r}",
                hint=f"remove the section, or set scheduler: {info.field_name}",
            )
        return value

    @field_validator("htcondor")
    @classmethod
    def _flavour_fits_walltime(
        cls, value: HTCondorSettings | None, info: ValidationInfo
    ) -> HTCondorSettings | None:
        defaults = info.data.get("defaults")
        flavour = value.job_flavour if value else None
        if flavour and defaults and defaults.walltime > JOB_FLAVOURS[flavour]:
            longer = [f for f, limit in JOB_FLAVOURS.items() if limit >= defaults.walltime]
            raise InvalidValue(
                f"job flavour {flavour!r} allows {format_duration(JOB_FLAVOURS[flavour])}, "
                f"less than defaults.walltime {format_duration(defaults.walltime)}",
                hint=f"use job_flavour {longer[0]!r}" if longer else "lower defaults.walltime",
            )
        return value

    def summary(self) -> str:
        """One line for `batchml site list`."""
        return self.description.strip().splitlines()[0] if self.description.strip() else ""
