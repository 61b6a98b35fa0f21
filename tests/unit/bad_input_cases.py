"""The battery of bad command lines: one row per case, what it must exit with and say.

Relative paths name the shared fixtures (tests/unit/bad_input_fixtures.py)
or the files a row writes itself; the working directory is an empty sandbox
(tests/unit/cli_sandbox.py). Exit status 2 is bad input or usage, 1 a failure
that is no fault of the command line (a busy alias, no GPU here, no trial
finished yet), 0 a listing that names the broken files it met and goes on.
``says`` is a fragment of the message the user reads (of stdout for status 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tests.unit.cli_sandbox import FIFO

BAD = 2  # bad input: batchml's error and hint lines
FAILED = 1


@dataclass(frozen=True)
class Case:
    """One command line, its expected exit status and a fragment of what it says."""

    argv: tuple[str, ...]
    status: int
    says: str
    files: Mapping[str, str | bytes | None] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    may_create: tuple[str, ...] = ()  # glob patterns (sandbox-relative) a case may leave
    usage: bool = False  # argparse's own error (usage line, exit 2), before any handler runs

    @property
    def id(self) -> str:
        text = " ".join(repr(a) if not a or set(a) & set(" \n\t") else a for a in self.argv)
        return f"{text[:80] or '(nothing)'} -> {self.says[:40]}"


CASES: list[Case] = []


def bad(status: int, says: str, *argv: str, **extra: object) -> None:
    """A case batchml itself refuses (or fails) with an error line and a hint line."""
    CASES.append(Case(tuple(argv), status, says, **extra))  # type: ignore[arg-type]


def usage(says: str, *argv: str, **extra: object) -> None:
    """A case argparse refuses: a usage line and exit 2."""
    CASES.append(Case(tuple(argv), 2, says, usage=True, **extra))  # type: ignore[arg-type]


# --- the top level ----------------------------------------------------------------------
usage("the following arguments are required: COMMAND")
usage("the following arguments are required: COMMAND", "--bogus")
usage("invalid choice: 'nosuch'", "nosuch")
usage("the following arguments are required: COMMAND", "-v")
usage("unrecognized arguments: --nope", "site", "list", "--nope")
bad(BAD, "no site named 'nosuch'", "--no-color", "site", "show", "nosuch")
bad(BAD, "no site named 'nosuch'", "-v", "site", "show", "nosuch")
usage("invalid choice: 'Site'", "Site", "list")

# --- site ---------------------------------------------------------------------------------
SITES = "../home/.config/batchml/sites"
usage("the following arguments are required: SUBCOMMAND", "site")
usage("unrecognized arguments: x", "site", "list", "x")
usage("invalid choice: 'bogus'", "site", "bogus")
bad(BAD, "'' is not a site name", "site", "show", "")
bad(BAD, "' ' is not a site name", "site", "show", " ")
bad(BAD, "no site named 'nosuch'", "site", "show", "nosuch")
bad(BAD, "did you mean 'lxplus'?", "site", "show", "lxpluss")
bad(BAD, "no site named 'garbage.bin'", "site", "show", "garbage.bin")
bad(BAD, "cannot be read: 'utf-8' codec can't decode", "site", "show", "./garbage.bin")
bad(BAD, "cannot be read: Is a directory", "site", "show", "./folder")
bad(BAD, "cannot be read: No such file or directory", "site", "show", "./nope.yaml")
bad(BAD, "cannot be read: No such file or directory", "site", "show", "nope.yml")
bad(BAD, "cannot be read: No such file or directory", "site", "show", "../x")
bad(BAD, "'a\\nb' is not a site name", "site", "show", "a\nb")
bad(BAD, "the file is empty", "site", "show", "/dev/null")
usage("invalid choice: 'xml'", "site", "show", "--format", "xml")
usage("expected one argument", "site", "show", "--format")
usage("unrecognized arguments: b", "site", "show", "a", "b")
bad(BAD, "no site named 'nosuch'", "site", "show", env={"BATCHML_SITE": "nosuch"})
bad(BAD, "cannot be read", "site", "show", env={"BATCHML_SITE": "./garbage.bin"})
usage("the following arguments are required: FILE", "site", "validate")
bad(BAD, "cannot be read: No such file or directory", "site", "validate", "nope.yaml")
bad(BAD, "cannot be read: Is a directory", "site", "validate", "folder")
bad(BAD, "'utf-8' codec can't decode", "site", "validate", "garbage.bin")
bad(BAD, "the file is empty", "site", "validate", "empty.txt")
bad(BAD, "the file is empty", "site", "validate", "/dev/null")
bad(BAD, "cannot be read: No such file", "site", "validate", "empty.txt", "nope.yaml")
SITE_FILES = {  # the content of x.yaml -> a fragment of the problem named
    "scheduler: pbs\n": "'pbs' is not allowed",
    "scheduler: local\ndefaults: {gpus: 99}\n": "defaults.gpus: 99 is out of range",
    "scheduler: local\ndefaults: {gpus: -1}\n": "defaults.gpus: -1 is out of range",
    "scheduler: local\ndefaults: {cores: 0}\n": "defaults.cores: 0 is out of range",
    "scheduler: local\ndefaults: {cores: x}\n": "defaults.cores: 'x' has the wrong type",
    "scheduler: local\ndefaults: {memory: 4}\n": "defaults.memory: 4 has no unit",
    "scheduler: local\ndefaults: {memory: lots}\n": "'lots' is not a size",
    "scheduler: local\ndefaults: {walltime: forever}\n": "'forever' is not a duration",
    "scheduler: local\ndefaults: {gpu_capability: 99}\n": "defaults.gpu_capability: 99",
    "scheduler: local\ndefaults: {gpu_capability: .nan}\n": "gpu_capability: nan is out of range",
    "scheduler: local\ndefaults: {gpu_names: ['A100\"']}\n": "is not a GPU model name",
    "scheduler: local\ndefaults: [1]\n": "defaults: [1] has the wrong type",
    "scheduler: local\nfoo: 1\n": "unknown key 'foo'",
    "scheduler: local\ndefualts: {}\n": "did you mean 'defaults'?",
    "- a\n- b\n": "the file is a list, not a mapping",
    "just text\n": "the file is a str, not a mapping",
    "scheduler: local\nscheduler: slurm\n": "key 'scheduler' appears twice",
    "scheduler: [local\n": "not valid YAML",
    "\tscheduler: local\n": "not valid YAML",
    "scheduler: local\x00\n": "not valid YAML",
    "extends: nosuch\n": "no site named 'nosuch'",
    "extends: 5\n": "5 is not a site name",
    "name: x\nscheduler: local\n": "a site's name comes from its file name",
    "defaults: {gpus: 1}\n": "scheduler: required key is missing",
    "scheduler: htcondor\nhtcondor: {job_flavour: weekend}\n": "not an lxplus job flavour",
    "scheduler: htcondor\nhtcondor: {extra_attributes: {'+A': \"1\\nqueue 5\"}}\n": "line break",
    "scheduler: htcondor\nhtcondor: {extra_attributes: {'A B': '1'}}\n": "'A B' is not a ClassAd",
    "scheduler: htcondor\nhtcondor: {schedd: 'a b'}\n": "'a b' is not a single word",
    "scheduler: slurm\nslurm: {partition: 'gpu\\n#SBATCH --x'}\n": "is not a single Slurm name",
    "scheduler: slurm\nslurm: {extra_directives: ['--x\\n--y']}\n": "is not one long sbatch option",
    "scheduler: local\nenvironment: {variables: {'X=1;y': a}}\n": "not an environment variable",
    'scheduler: local\nenvironment: {variables: {A: "a\\nb"}}\n': "A: 'a\\nb' holds a line break",
    'scheduler: local\npaths: {log_dir: "a\\nb"}\n': "log_dir: 'a\\nb' is not a site path",
    "scheduler: local\npaths: {scratch_dir: 5}\n": "scratch_dir: 5 has the wrong type",
    "scheduler: local\nnetwork: {scheduler_port: 70000}\n": "70000 is out of range",
    "scheduler: local\nnetwork: {worker_ports: [9000]}\n": "worker_ports[1]: item 2 is missing",
    "scheduler: local\nnetwork: {interface: 'lo; rm'}\n": "'lo; rm' is not a single word",
    "scheduler: htcondor\nslurm: {partition: gpu}\n": "a 'slurm' section on a site whose scheduler",
    "scheduler: slurm\nslurm: {gpu_share: shard}\n": "shards_per_gpu: gpu_share 'shard' needs",
    "scheduler: slurm\nslurm: {gpu_share: mig}\n": "slurm.mig_profile: gpu_share 'mig' needs",
    "scheduler: slurm\nslurm: {shards_per_gpu: 4}\n": "shards_per_gpu is set but gpu_share",
    "scheduler: slurm\nslurm: {gpu_share: halves}\n": "slurm.gpu_share",
    "scheduler: local\nmps: true\n": "mps is on for a local site",
}
for text, problem in SITE_FILES.items():
    bad(BAD, problem, "site", "validate", "x.yaml", files={"x.yaml": text})
bad(BAD, "extends: no site named 'b' below", "site", "validate", f"{SITES}/a.yaml",
    files={f"{SITES}/a.yaml": "extends: b\n", f"{SITES}/b.yaml": "scheduler: local\n"})  # fmt: skip
bad(BAD, "defaults.gpus: 99 is out of range (set in", "site", "show", "mine",
    files={f"{SITES}/mine.yaml": "extends: other\n",
           "../admin-sites/other.yaml": "scheduler: local\ndefaults: {gpus: 99}\n"})  # fmt: skip
bad(0, "invalid", "site", "list", files={f"{SITES}/bad.yaml": b"\xff\x00"})
bad(0, "invalid", "site", "list", files={f"{SITES}/d.yaml": None})
bad(0, "local", "site", "list", env={"BATCHML_ADMIN_SITES_DIR": "garbage.bin"})

# --- submit -------------------------------------------------------------------------------
RUN = ("--", "echo", "hi")
usage("the following arguments are required: template", "submit")
bad(BAD, "no command to run", "submit", "train")
bad(BAD, "no command to run", "submit", "train", "--")
bad(BAD, "the job has no command", "submit", "train", "--dry-run", "--", "")
bad(BAD, "no local template named 'nosuch'", "submit", "nosuch", *RUN)
bad(BAD, "no local template named '../x'", "submit", "../x", "--dry-run", *RUN)
bad(BAD, "no htcondor template named 'nosuch'", "submit", "nosuch", "--site", "lxplus", *RUN)
usage("argument --cores: invalid int value: 'x'", "submit", "train", "--cores", "x", *RUN)
usage("argument --cores: invalid int value: '1.5'", "submit", "train", "--cores", "1.5", *RUN)
bad(BAD, "cores must be positive, not 0", "submit", "train", "--cores", "0", *RUN)
bad(BAD, "cores must be positive, not -2", "submit", "train", "--cores=-2", *RUN)
bad(BAD, "cores=5000 is more than a job may ask for", "submit", "train", "--cores", "5000", *RUN)
bad(BAD, "gpus=99 is out of range", "submit", "train", "--gpus", "99", "--dry-run", *RUN)
bad(BAD, "gpus=65 is out of range", "submit", "train", "--gpus", "65", "--site", "lxplus", *RUN)
bad(BAD, "gpus=-1 is out of range", "submit", "train", "--gpus", "-1", *RUN)
usage("argument --gpus: invalid int value: 'all'", "submit", "train", "--gpus", "all", *RUN)
bad(BAD, "'4' is not a size", "submit", "train", "--memory", "4", *RUN)
bad(BAD, "'abc' is not a size", "submit", "train", "--memory", "abc", *RUN)
bad(BAD, "'-4GB' is not a size", "submit", "train", "--memory=-4GB", *RUN)
bad(BAD, "memory must be positive, not 0", "submit", "train", "--memory", "0GB", *RUN)
bad(BAD, "both memory and mem_per_gpu are given", "submit", "train", "--memory", "8GB",
    "--mem-per-gpu", "4GB", "--gpus", "1", "--dry-run", *RUN)  # fmt: skip
bad(BAD, "both memory and mem_per_gpu are given", "submit", "train", "--site", "slurm-generic",
    "--memory", "8GB", "--mem-per-gpu", "4GB", "--dry-run", *RUN)  # fmt: skip
bad(BAD, "the job asks for no GPU", "submit", "train", "--mem-per-gpu", "4GB", "--dry-run", *RUN)
bad(BAD, "the job asks for no GPU", "submit", "train", "--site", "lxplus", "--gpus", "0",
    "--mem-per-gpu", "4GB", "--dry-run", *RUN)  # fmt: skip
bad(BAD, "mem_per_gpu must be positive", "submit", "train", "--gpus", "1", "--mem-per-gpu", "0MB",
    "--dry-run", *RUN)  # fmt: skip
bad(BAD, "'x' is not a size", "submit", "train", "--gpus", "1", "--mem-per-gpu", "x", *RUN)
usage("argument --walltime: expected one argument", "submit", "train", "--walltime", "-1h")
bad(BAD, "'-1h' is not a duration", "submit", "train", "--walltime=-1h", *RUN)
bad(BAD, "'abc' is not a duration", "submit", "train", "--walltime", "abc", *RUN)
bad(BAD, "'0' is not a duration", "submit", "train", "--walltime", "0", *RUN)
bad(BAD, "walltime must be positive", "submit", "train", "--walltime", "0s", *RUN)
bad(BAD, "longer than any lxplus job flavour", "submit", "train", "--site", "lxplus",
    "--walltime", "30d", "--dry-run", *RUN)  # fmt: skip
for capability in ("nan", "inf", "0", "99", "-1"):
    bad(BAD, "is not a CUDA compute capability", "submit", "train", "--gpus", "1",
        f"--gpu-capability={capability}", "--dry-run", *RUN)  # fmt: skip
usage("invalid float value: 'ampere'", "submit", "train", "--gpu-capability", "ampere")
bad(BAD, "'0' is not a size", "submit", "train", "--disk", "0", *RUN)
bad(BAD, "disk must be positive, not 0", "submit", "train", "--disk", "0B", *RUN)
bad(BAD, "--env 'NOEQ' has no '='", "submit", "train", "--env", "NOEQ", *RUN)
bad(BAD, "'1BAD' is not an environment variable name", "submit", "train", "--env", "1BAD=x", *RUN)
bad(BAD, "'' is not an environment variable name", "submit", "train", "--env", "=x", *RUN)
bad(BAD, "'A B' is not an environment variable name", "submit", "train", "--env", "A B=x", *RUN)
bad(BAD, "'X;rm' is not an environment variable name", "submit", "train", "--env", "X;rm=1", *RUN)
bad(BAD, "job name '' is empty", "submit", "train", "--name", "", "--dry-run", *RUN)
bad(BAD, "too long", "submit", "train", "--name", "n" * 300, "--dry-run", *RUN)
bad(BAD, "holds a newline or NUL", "submit", "train", "--item", "a\nb", *RUN)
bad(BAD, "holds a newline or NUL", "submit", "train", "--item", "a", "--item", "b\n", *RUN)
bad(BAD, "/dev/null is not a folder", "submit", "train", "--workdir", "/dev/null/x", *RUN)
bad(BAD, "garbage.bin exists and is not a folder", "submit", "train", "--workdir", "garbage.bin",
    *RUN)  # fmt: skip
bad(BAD, "garbage.bin is not a folder", "submit", "train", "--workdir", "garbage.bin/job", *RUN)
bad(BAD, "no site named 'nosuch'", "submit", "train", "--site", "nosuch", *RUN)
bad(BAD, "cannot be read", "submit", "train", "--site", "./garbage.bin", *RUN)
bad(BAD, "cannot be read: Is a directory", "submit", "train", "--site", "folder/", *RUN)
bad(BAD, "'' is not a site name", "submit", "train", "--site", "", "--dry-run", *RUN)
bad(BAD, "the job's python is empty", "submit", "train", "--python", "", "--dry-run", *RUN)
usage("unrecognized arguments: --bogus", "submit", "train", "--bogus", *RUN)
usage("ignored explicit argument", "submit", "train", "--dry-run=yes", *RUN)

# --- jobs ---------------------------------------------------------------------------------
bad(BAD, "no site named 'nosuch'", "jobs", "--site", "nosuch")
bad(BAD, "'' is not a site name", "jobs", "--site", "")
bad(BAD, "cannot be read", "jobs", "--site", "./garbage.bin")
usage("invalid choice: 'bogus'", "jobs", "bogus")
bad(BAD, "'abc' is not a local job id", "jobs", "list", "abc")
bad(BAD, "'../../x' is not a local job id", "jobs", "list", "../../x")
bad(BAD, "'-1' is not a local job id", "jobs", "list", "-1")
bad(BAD, "'1 2' is not a local job id", "jobs", "list", "1 2")
bad(BAD, "no site named 'nosuch'", "jobs", "list", "--site", "nosuch")
bad(BAD, "'abc' is not a Slurm job id", "jobs", "--site", "slurm-generic", "list", "abc")
bad(BAD, "'1.0' is not a Slurm job id", "jobs", "--site", "slurm-generic", "list", "1.0")
usage("the following arguments are required: ID", "jobs", "cancel")
bad(BAD, "no local job '999999'", "jobs", "cancel", "999999")
bad(BAD, "no local job 'abc'", "jobs", "cancel", "abc")
bad(BAD, "no local job '0'", "jobs", "cancel", "0")
bad(BAD, "no local job '-1'", "jobs", "cancel", "-1")
bad(BAD, "no local job '../x'", "jobs", "cancel", "../x")
bad(BAD, "no local job '999999'", "jobs", "cancel", "999999", "999998")
bad(BAD, "no site named 'nosuch'", "jobs", "cancel", "--site", "nosuch", "1")
bad(BAD, "'abc' is not a Slurm job id", "jobs", "cancel", "--site", "slurm-generic", "abc")
bad(BAD, "'1_' is not a Slurm job id", "jobs", "cancel", "--site", "slurm-generic", "1_")
bad(BAD, "'12' is not an HTCondor job id", "jobs", "cancel", "--site", "lxplus", "12")
bad(BAD, "'1.x' is not an HTCondor job id", "jobs", "--site", "lxplus", "list", "1.x")

# --- cluster up: every bad value fails before a scheduler or a worker starts -----------------
usage("the following arguments are required: SUBCOMMAND", "cluster")
usage("invalid choice: 'down'", "cluster", "down")
for jobs in ("0", "-1", "x", "1.5", "100000"):
    usage("argument --jobs: ", "cluster", "up", f"--jobs={jobs}")
bad(BAD, "no site named 'nosuch'", "cluster", "up", "--site", "nosuch")
bad(BAD, "'' is not a site name", "cluster", "up", "--site", "")
bad(BAD, "cores must be positive, not 0", "cluster", "up", "--cores", "0")
bad(BAD, "gpus=99 is out of range", "cluster", "up", "--gpus", "99")
bad(BAD, "'4' is not a size", "cluster", "up", "--memory", "4")
bad(BAD, "'0' is not a size", "cluster", "up", "--disk", "0")
bad(BAD, "'soon' is not a duration", "cluster", "up", "--walltime", "soon")
bad(BAD, "is not a CUDA compute capability", "cluster", "up", "--gpus", "1", "--gpu-capability",
    "nan")  # fmt: skip
bad(BAD, "both memory and mem_per_gpu are given", "cluster", "up", "--gpus", "1", "--memory",
    "8GB", "--mem-per-gpu", "2GB")  # fmt: skip
bad(BAD, "the job asks for no GPU", "cluster", "up", "--mem-per-gpu", "2GB")
bad(FAILED, "but CUDA_VISIBLE_DEVICES lists 0", "cluster", "up", "--gpus", "2",
    env={"CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
bad(FAILED, "need 4 GPUs, but CUDA_VISIBLE_DEVICES lists 1", "cluster", "up", "--gpus", "2",
    "--jobs", "2", env={"CUDA_VISIBLE_DEVICES": "0"})  # fmt: skip
bad(BAD, "longer than any lxplus job flavour", "cluster", "up", "--site", "lxplus", "--walltime",
    "9d")  # fmt: skip

# --- hpo run: study files -----------------------------------------------------------------
STUDY = (
    "study_name: t\nobjective: train.py:objective\nn_trials: 2\n"
    "search_space:\n  lr: {type: float, low: 0.001, high: 0.1}\n"
)
TRAIN = "def objective(trial, ctx):\n    return 1.0\n"


def study(text: str, train: str | bytes | None = TRAIN) -> dict[str, str | bytes | None]:
    """s.yaml holding ``text`` and a train.py beside it."""
    return {"s.yaml": text, **({"train.py": train} if train is not None else {})}


def with_space(parameter: str) -> dict[str, str | bytes | None]:
    return study(STUDY.replace("{type: float, low: 0.001, high: 0.1}", parameter))


usage("the following arguments are required: config", "hpo", "run")
usage("invalid choice: 'start'", "hpo", "start", "s.yaml")
bad(BAD, "cannot be read: No such file or directory", "hpo", "run", "nope.yaml")
bad(BAD, "cannot be read: Is a directory", "hpo", "run", "folder")
bad(BAD, "'utf-8' codec can't decode", "hpo", "run", "garbage.bin")
bad(BAD, "the file is empty", "hpo", "run", "empty.txt")
bad(BAD, "the file is empty", "hpo", "run", "/dev/null")
STUDY_FILES = {  # study file text -> a fragment of the problem named
    "study_name: t\nobjective: train.py:objective\n": "n_trials: required key is missing",
    "objective: train.py:objective\nn_trials: 2\n": "study_name: required key is missing",
    STUDY.replace("n_trials: 2", "n_trials: 0"): "n_trials: 0 is out of range",
    STUDY.replace("n_trials: 2", "n_trials: many"): "n_trials: 'many' has the wrong type",
    STUDY.replace("n_trials: 2", "n_trials: 1000000"): "n_trials: 1000000 is out of range",
    STUDY.replace("study_name: t", "study_name: a/b"): "'a/b' is not a study name",
    STUDY.replace("study_name: t", "study_name: ../../x"): "'../../x' is not a study name",
    STUDY.replace("study_name: t", "study_name: /abs"): "'/abs' is not a study name",
    STUDY.replace("study_name: t", 'study_name: "a\\nb"'): "'a\\nb' is not a study name",
    STUDY.replace("study_name: t", "study_name: ''"): "'' is not a study name",
    STUDY.replace("study_name: t", "study_name: 5"): "study_name: 5 has the wrong type",
    STUDY.replace("train.py:objective", "nofunc"): "'nofunc' does not name a function",
    STUDY.replace("train.py:objective", "'train.py:'"): "does not name a function",
    STUDY.replace("train.py:objective", "train.py:not-an-id"): "does not name a function",
    STUDY + "command: train.py --lr {lr}\n": "give exactly one of objective and command",
    STUDY.replace("objective: train.py:objective\n", ""): "give exactly one of objective",
    STUDY + "direction: up\n": "direction: 'up' is not allowed",
    STUDY + "gpus_per_trial: 99\n": "gpus_per_trial: 99 is out of range",
    STUDY + "gpus_per_trial: -1\n": "gpus_per_trial: -1 is out of range",
    STUDY + "trials_per_job: 0\n": "trials_per_job: 0 is out of range",
    STUDY + "gpus_per_trial: 0.3\n": "gpus_per_trial: 0.3 is neither a whole number of GPUs",
    STUDY + "gpus_per_trial: 0.5\ntrials_per_job: 3\n": "trials_per_job: 3 leaves part of a GPU",
    STUDY + "gpus_per_trial: 0.5\ntrials_per_job: 2\ngpu_memory_per_trial: 6\n":
        "gpu_memory_per_trial: 6 has no unit",
    STUDY + "gpu_memory_per_trial: auto\n": "gpu_memory_per_trial: 'auto' needs trials that share",
    STUDY + "max_jobs: 0\n": "max_jobs: 0 is out of range",
    STUDY + "max_jobs: 20000\n": "max_jobs: 20000 is out of range",
    STUDY + "max_retries: -1\n": "max_retries: -1 is out of range",
    STUDY + "sampler: {name: grid}\n": "sampler.name: 'grid' is not allowed",
    STUDY + "sampler: {seed: x}\n": "sampler.seed: 'x' has the wrong type",
    STUDY + "pruner: {name: nope}\n": "pruner.name: 'nope' is not allowed",
    STUDY + "pruner: {n_startup_trials: -1}\n": "pruner.n_startup_trials: -1 is out of range",
    STUDY + "budget: 5\n": "unknown key 'budget'",
    STUDY + "n_trial: 5\n": "did you mean 'n_trials'?",
    STUDY + "n_trials: 3\n": "key 'n_trials' appears twice",
    STUDY.replace("  lr: {type: float, low: 0.001, high: 0.1}\n", "  [1]\n"):
        "search_space: [1] has the wrong type",
    STUDY + "storage: folder\n": "storage 'folder' is neither a .journal path nor a database URL",
    STUDY + "storage: ''\n": "storage '' is neither a .journal path nor a database URL",
    STUDY + "site: nosuch\n": "no site named 'nosuch'",
    STUDY + "site: ''\n": "'' is not a site name",
    STUDY + "site: ./garbage.bin\n": "cannot be read",
    STUDY + "sites: {local: {max_jobs: 0}}\n": "sites.local.max_jobs: 0 is out of range",
    STUDY + "sites: {local: {max_job: 2}}\n": "did you mean 'max_jobs'?",
    STUDY + "sites: {local: {walltime: soon}}\n": "sites.local.walltime: 'soon' is not a",
    STUDY + "sites: {./x.yaml: {trials_per_job: 0}}\n": "sites['./x.yaml'].trials_per_job: 0",
    STUDY + "sites: {nosuch: {}}\n": "sites.nosuch: no site named 'nosuch'",
    STUDY + "sites: [local]\n": "sites: ['local'] has the wrong type",
    STUDY + "sites: {}\n": "sites names no site",
    STUDY + "site: local\nsites: {local: {}}\n": "give site (one site) or sites (several)",
}  # fmt: skip
for text, problem in STUDY_FILES.items():
    bad(BAD, problem, "hpo", "run", "s.yaml", files=study(text))
SPACES = {  # one search-space entry -> a fragment of the problem named
    "{type: float, low: 0, high: 1, log: true}": "search_space.lr: a log scale needs low > 0",
    "{type: int, low: 0, high: 10, log: true}": "a log scale needs low > 0 (at least 1 for int)",
    "{type: float, low: -1, high: 1, log: true}": "a log scale needs low > 0",
    "{type: float, low: 1, high: 0}": "needs low < high, not 1.0 and 0.0",
    "{type: float, low: 1, high: 1}": "needs low < high",
    "{type: float, high: 1}": "a float parameter needs low and high",
    "{type: int}": "an int parameter needs low and high",
    "{type: categorical}": "a categorical parameter needs choices",
    "{type: categorical, choices: []}": "a categorical parameter needs choices",
    "{type: categorical, choices: [{a: 1}, 2]}": "choice {'a': 1} is not text, a number",
    "{type: categorical, choices: [[1, 2]]}": "choice [1, 2] is not text, a number",
    "{type: categorical, choices: [.nan]}": "choice nan is not text, a number",
    "{type: categorical, choices: [a], low: 1}": "low do not apply to a categorical parameter",
    "{type: categorical, choices: [a], log: true}": "log do not apply to a categorical",
    "{type: bool}": "search_space.lr.type: 'bool' is not allowed",
    "{low: 0, high: 1}": "search_space.lr.type: required key is missing",
    "{type: float, low: 0.1, high: 1, log: true, step: 0.1}": "takes log or step, not both",
    "{type: float, low: 0, high: 1, step: 0.3}": "Optuna refuses it",
    "{type: int, low: 0, high: 10, step: 3}": "Optuna refuses it",
    "{type: int, low: 0.5, high: 3.7}": "an int parameter needs whole numbers",
    "{type: int, low: 0, high: 10, step: 0.5}": "an int parameter needs whole numbers",
    "{type: float, low: .nan, high: 1}": "low, high and step must be finite numbers",
    "{type: float, low: 0, high: .inf}": "low, high and step must be finite numbers",
    "{type: float, low: 0, high: 1, step: .nan}": "must be finite numbers",
    "{type: int, low: 0, high: 10, step: 0}": "step must be above 0, not 0",
    "{type: int, low: 0, high: 10, step: -1}": "step must be above 0, not -1",
    "{type: float, low: 0, high: 1, choices: [1]}": "choices apply to categorical parameters",
    "{type: float, low: x, high: 1}": "search_space.lr.low: 'x' has the wrong type",
    "{type: float, low: 0, high: 1, log: maybe}": "search_space.lr.log: 'maybe' has the wrong type",
    "{type: float, low: 0, high: 1, extra: 1}": "search_space.lr.extra: unknown key 'extra'",
    "[1, 2]": "search_space.lr: [1, 2] has the wrong type",
}
for parameter, problem in SPACES.items():
    bad(BAD, problem, "hpo", "run", "s.yaml", files=with_space(parameter))
OBJECTIVES = {  # train.py -> a fragment of the message
    "def objective(:\n": "fails when loaded: SyntaxError",
    "raise RuntimeError('boom')\n": "fails when loaded: RuntimeError: boom",
    "import nosuchmodule\n": "fails when loaded: ModuleNotFoundError",
    "objective = 3\n": "train.py has no function 'objective'",
    b"\xff\xfe\x00garbage": "fails when loaded",
}
for train, problem in OBJECTIVES.items():
    bad(BAD, problem, "hpo", "run", "s.yaml", files=study(STUDY, train))
bad(BAD, "objective file", "hpo", "run", "s.yaml", files=study(STUDY, None))
bad(BAD, "cannot import 'nosuchmod' for the objective", "hpo", "run", "s.yaml",
    files=study(STUDY.replace("train.py:objective", "nosuchmod:objective")))  # fmt: skip
bad(BAD, "module 'bad_mod' of the objective fails when imported", "hpo", "run", "s.yaml",
    files={**study(STUDY.replace("train.py:objective", "bad_mod:objective")),
           "bad_mod.py": "1/0\n"})  # fmt: skip
bad(BAD, "objective file", "hpo", "run", "s.yaml",
    files={**study(STUDY.replace("train.py", "folder.py"), None), "folder.py": None})  # fmt: skip
COMMANDS = {  # command: value -> a fragment of the message
    "''": "the command is empty",
    "[]": "the command is empty",
    "'nosuch.py --lr {lr}'": "the command's script",
    "5": "command: 5 is not a command",
    "[train.py, 5]": "command: ['train.py', 5] is not a command",
}
for command, problem in COMMANDS.items():
    text = STUDY.replace("objective: train.py:objective", f"command: {command}")
    bad(BAD, problem, "hpo", "run", "s.yaml", files=study(text))
STORAGES = {  # storage: value -> a fragment of the message
    "folder.journal": "the study journal folder.journal is a folder",
    "/dev/null/x.journal": "/dev/null is not a folder",
    "garbage.bin/x.journal": "garbage.bin is not a folder",
    "broken.journal": "broken.journal is not an Optuna journal",
    "postgresql://u:secret@localhost:1/db": "cannot open the study database postgresql://u:***@",
    "mysql://u@localhost:1/db": "cannot open the study database mysql://u@localhost:1/db",
    "nosuchdialect://x": "cannot open the study database nosuchdialect://x",
    "sqlite:////dev/null/x.db": "cannot open the study database sqlite:////dev/null/x.db",
    "sqlite:///garbage.bin": "cannot open the study database sqlite:///garbage.bin",
}
for storage, problem in STORAGES.items():
    files = {**study(STUDY + f"storage: {storage}\n"), "folder.journal": None,
             "broken.journal": b"\xff\x00garbage\n{not json\n"}  # fmt: skip
    bad(BAD, problem, "hpo", "run", "s.yaml", files=files)
bad(FAILED, "need 2 GPUs, but CUDA_VISIBLE_DEVICES lists 0", "hpo", "run", "s.yaml",
    files=study(STUDY + "gpus_per_trial: 2\n"), env={"CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
bad(FAILED, "need 3 GPUs, but CUDA_VISIBLE_DEVICES lists 1", "hpo", "run", "s.yaml",
    files=study(STUDY + "gpus_per_trial: 1\ntrials_per_job: 3\n"),
    env={"CUDA_VISIBLE_DEVICES": "0"})  # fmt: skip

# --- hpo status | best | report | resume: they only read --------------------------------------
BROKEN_JOURNAL = {"g.journal": b"\xff\x00garbage\n{not json\n", "folder.journal": None}
for command in ("status", "best", "report", "resume"):
    hpo = ("hpo", command)
    usage("the following arguments are required: study", *hpo)
    bad(BAD, "no study named 'nosuch': there is no journal file", *hpo, "nosuch")
    bad(BAD, "'a/b' is not a study name", *hpo, "a/b")
    bad(BAD, "'..' is not a study name", *hpo, "..")
    bad(BAD, "storage 'folder' is neither a .journal path", *hpo, "pending", "--storage", "folder")
    bad(BAD, "g.journal is not an Optuna journal", *hpo, "pending", "--storage", "g.journal",
        files=BROKEN_JOURNAL)  # fmt: skip
    bad(BAD, "there is no journal file folder.journal", *hpo, "pending", "--storage",
        "folder.journal", files=BROKEN_JOURNAL)  # fmt: skip
    bad(BAD, "there is no SQLite file nope.db", *hpo, "pending", "--storage", "sqlite:///nope.db")
    bad(BAD, "cannot read study 'pending' from sqlite:///garbage.bin", *hpo, "pending",
        "--storage", "sqlite:///garbage.bin")  # fmt: skip
    bad(BAD, "cannot read study 'pending' from postgresql://u:***@localhost:1/db", *hpo,
        "pending", "--storage", "postgresql://u:pw@localhost:1/db")  # fmt: skip
    bad(BAD, "from nosuch://x: ", *hpo, "pending", "--storage", "nosuch://x")
    bad(BAD, "no study named 'other' in s.journal", *hpo, "other", "--storage", "s.journal")
bad(FAILED, "study 'pending' has no completed trial yet", "hpo", "best", "pending", "--storage",
    "s.journal")  # fmt: skip
bad(FAILED, "study 'foreign' has no completed trial yet", "hpo", "best", "foreign", "--json",
    "--storage", "s.journal")  # fmt: skip
bad(BAD, "study 'foreign' was not started by `batchml hpo run`", "hpo", "resume", "foreign",
    "--storage", "s.journal")  # fmt: skip
bad(BAD, "n_trials: 0 is out of range", "hpo", "resume", "stale", "--storage", "s.journal")
bad(BAD, "base: missing or not a folder path", "hpo", "resume", "nobase", "--storage", "s.journal")
REPORT = ("hpo", "report", "done", "--storage", "s.journal")
bad(BAD, "the report /dev/null/x.html cannot be made: /dev/null is not a folder", *REPORT, "-o",
    "/dev/null/x.html")  # fmt: skip
bad(BAD, "the report folder is a folder", *REPORT, "-o", "folder")
bad(BAD, "the report . is a folder", *REPORT, "-o", "")
bad(BAD, "the report pipe is not a plain file", *REPORT, "--output", "pipe", files={"pipe": FIFO})
usage("argument -o/--output: expected one argument", *REPORT, "-o")
usage("unrecognized arguments: --json", "hpo", "status", "done", "--json")

# --- demo: every bad option fails before the workdir, the sample or a cluster is made ---------
for flag, value in (("--trials", "0"), ("--trials", "x"), ("--events", "-5"), ("--files", "0"),
                    ("--workers", "0"), ("--workers", "1.5")):  # fmt: skip
    usage(f"argument {flag}: {value!r} is not a positive whole number", "demo", flag, value)
bad(BAD, "sizes must be positive", "demo", "--events", "3", "--files", "2")
bad(BAD, "--workdir /dev/null/x cannot be made: /dev/null is not a folder", "demo", "--workdir",
    "/dev/null/x")  # fmt: skip
bad(BAD, "--workdir garbage.bin exists and is not a folder", "demo", "--workdir", "garbage.bin")
bad(BAD, "no site named 'nosuch'", "demo", "--site", "nosuch")
bad(BAD, "'' is not a site name", "demo", "--site", "")
bad(BAD, "no such file: missing.root", "demo", "--data", "missing.root")
bad(BAD, "garbage.bin is not a ROOT file: it starts with", "demo", "--data", "garbage.bin")
bad(BAD, "empty.txt is not a ROOT file", "demo", "--data", "empty.txt")
bad(BAD, "folder is a folder, not a ROOT file", "demo", "--data", "folder")
bad(BAD, "no file matches *.nomatch", "demo", "--data", "*.nomatch")
bad(BAD, "no branch 'nope' in events.root", "demo", "--data", "events.root", "--features", "x",
    "--target", "nope")  # fmt: skip
bad(BAD, "no branch 'nope' in events.root", "demo", "--data", "events.root", "--features", "nope")
bad(BAD, "no tree 'nope' in events.root", "demo", "--data", "events.root", "--features", "x",
    "--tree", "nope")  # fmt: skip
bad(BAD, "no branch 'nope' in events.root", "demo", "--data", "events.root", "--features", "x,y",
    "--weight", "nope")  # fmt: skip
bad(BAD, "no branch 'lep_pt'", "demo", "--data", "events.root")
bad(BAD, "names an empty branch or tree", "demo", "--features", ",")
bad(BAD, "names an empty branch or tree", "demo", "--target", "")
bad(BAD, "names an empty branch or tree", "demo", "--weight", "")
bad(BAD, "the generated sample has no branch or tree nope", "demo", "--features", "nope")
bad(BAD, "the generated sample has no branch or tree", "demo", "--tree", "other")
bad(BAD, "the generated sample has no branch or tree", "demo", "--target", "y")
bad(BAD, "--xrootd notaurl is not a root:// URL", "demo", "--xrootd", "notaurl")
bad(BAD, "--xrootd http://x is not a root:// URL", "demo", "--xrootd", "http://x")
usage("argument --data: expected at least one argument", "demo", "--data")
usage("unrecognized arguments: extra", "demo", "extra")

# --- registry -----------------------------------------------------------------------------
REG = ("registry", "--root", "reg")
usage("the following arguments are required: SUBCOMMAND", "registry")
bad(BAD, "is not a batchml registry: it does not exist", "registry", "list")
bad(BAD, "nowhere is not a batchml registry: it does not exist", "registry", "list",
    env={"BATCHML_REGISTRY": "nowhere"})  # fmt: skip
bad(BAD, "garbage.bin is not a batchml registry", "registry", "--root", "garbage.bin", "list")
bad(BAD, "folder is not a batchml registry", "registry", "--root", "folder", "list")
bad(BAD, "is not a batchml registry", "registry", "--root", "", "list")
bad(BAD, "no committed version nosuch in reg", *REG, "list", "nosuch")
bad(BAD, "'../x' is not a valid model name", *REG, "list", "../x")
bad(BAD, "'a b' is not a valid model name", *REG, "list", "a b")
REFS = {  # a model reference -> a fragment of the message
    "nosuch": "no committed version nosuch in reg",
    "jets/99": "no committed version jets/99 in reg",
    "jets@nope": "model 'jets' has no alias 'nope'",
    "jets@sha256:zz": "'sha256:zz' in 'jets@sha256:zz' is not a sha256 digest",
    "jets@sha256:": "is not a sha256 digest",
    "jets@sha256:00000000": "no committed version jets@sha256:00000000 in reg",
    "jets/0": "'0' in 'jets/0' is not a version number",
    "jets/-1": "'-1' in 'jets/-1' is not a version number",
    "jets/abc": "'abc' in 'jets/abc' is not a version number",
    "jets/1.5": "is not a version number",
    "": "'' is not a valid model name: it is empty",
    "../x": "is not a valid model name",
    "/etc/passwd": "is not a valid model name",
    "jets@": "'' is not a valid alias: it is empty",
    "batchml:": "'' is not a valid model name: it is empty",
    "mlflow:jets/1": "'mlflow:jets' is not a valid model name",
}
for ref, problem in REFS.items():
    bad(BAD, problem, *REG, "show", ref)
usage("invalid choice: 'xml'", *REG, "show", "jets/1", "--format", "xml")
bad(0, "production  auc=0.9", *REG, "list", "jets", files={"reg/models/jets/versions/²": None})
bad(0, "production", *REG, "history", "jets",
    files={"reg/models/jets/aliases/production/².json": "{}"})  # fmt: skip
bad(BAD, "no committed version jets/99 in reg", *REG, "alias", "jets", "production", "99")
bad(BAD, "'bad alias' is not a valid alias", *REG, "alias", "jets", "bad alias", "1")
bad(BAD, "'1' is not a valid alias: it is a number", *REG, "alias", "jets", "1", "1")
bad(BAD, "'../x' is not a valid alias", *REG, "alias", "jets", "../x", "1")
usage("'0' is not a version number or 'none'", *REG, "alias", "jets", "production", "0")
usage("'x' is not a version number or 'none'", *REG, "alias", "jets", "production", "x")
usage("argument --expect: '-1' is not a version number", *REG, "alias", "jets", "a", "1",
    "--expect=-1")  # fmt: skip
bad(FAILED, "alias 'production' points at 2, not 1 as expected", *REG, "alias", "jets",
    "production", "1", "--expect", "1",
    may_create=("work/reg/models/jets/aliases/production/rejected-*.json",))  # fmt: skip
bad(BAD, "no committed version nosuch/1 in reg", *REG, "alias", "nosuch", "production", "1")
bad(BAD, "no model 'nosuch' in reg", *REG, "history", "nosuch")
bad(BAD, "model 'jets' never had an alias 'nosuch'", *REG, "history", "jets", "--alias", "nosuch")
bad(BAD, "'../x' is not a valid alias", *REG, "history", "jets", "--alias", "../x")
bad(BAD, "no model 'nosuch' in reg", *REG, "verify", "nosuch")
bad(BAD, "'../x' is not a valid model name", *REG, "verify", "../x")
bad(BAD, "'jets/1' is not a valid model name", *REG, "verify", "jets/1")
bad(BAD, "nowhere is not a batchml registry", "registry", "--root", "nowhere", "verify")
usage("argument --keep: '-1' is not a whole number of 0 or more", *REG, "gc", "--keep=-1")
usage("argument --keep: 'x' is not a whole number", *REG, "gc", "--keep", "x")
usage("argument --grace: 'x' is not a duration", *REG, "gc", "--grace", "x")
usage("argument --grace: '-1d' is not a duration", *REG, "gc", "--grace=-1d")
bad(BAD, "no version records the metric 'nosuch'", *REG, "gc", "--keep", "1", "--metric",
    "nosuch", "--dry-run")  # fmt: skip
bad(BAD, "--metric and --maximize rank the versions --keep keeps", *REG, "gc", "--metric", "auc",
    "--dry-run")  # fmt: skip
bad(BAD, "--metric and --maximize rank", *REG, "gc", "--maximize", "--dry-run")
bad(BAD, "--maximize needs --metric", *REG, "gc", "--keep", "1", "--maximize", "--dry-run")
bad(BAD, "is not a batchml registry", "registry", "--root", "folder", "gc", "--damaged")
bad(BAD, "no committed version nosuch/1 in reg", *REG, "diff", "jets/1", "nosuch/1")
bad(BAD, "no committed version jets/99 in reg", *REG, "diff", "jets/99", "jets/1")
usage("the following arguments are required: new", *REG, "diff", "jets/1")
usage("the following arguments are required: ref", *REG, "annotate")
bad(BAD, "no committed version nosuch/1 in reg", *REG, "annotate", "nosuch/1", "--description",
    "x")  # fmt: skip
bad(BAD, "no committed version jets/99 in reg", *REG, "annotate", "jets/99", "--intended-use", "x")
bad(BAD, "model 'jets' has no alias 'nope'", *REG, "annotate", "jets@nope", "--limitations", "x")
bad(BAD, "'bad tag!' is not a valid tag", *REG, "annotate", "jets/1", "--tag", "bad tag!")
bad(BAD, "no committed version jets/99 in reg", *REG, "card", "jets/99")
bad(BAD, "card.txt: a card is written as .md or .html, not '.txt'", *REG, "card", "jets/1",
    "-o", "card.txt")  # fmt: skip
bad(BAD, "the card /dev/null/x.md cannot be made: /dev/null is not a folder", *REG, "card",
    "jets/1", "--output", "/dev/null/x.md")  # fmt: skip
bad(BAD, "the card cards.md is a folder", *REG, "card", "jets/1", "-o", "cards.md",
    files={"cards.md": None})  # fmt: skip
bad(BAD, "the card card.html is not a plain file", *REG, "card", "jets/1", "-o", "card.html",
    files={"card.html": FIFO})  # fmt: skip
usage("the following arguments are required: -o/--output", *REG, "html")
bad(BAD, "nowhere is not a batchml registry", *REG, "html", "nowhere", "-o", "out")
bad(BAD, "garbage.bin exists and is not a folder", *REG, "html", "--output", "garbage.bin")
bad(BAD, "/dev/null/x cannot be made: /dev/null is not a folder", *REG, "html", "-o",
    "/dev/null/x")  # fmt: skip
bad(BAD, "reg is not empty and holds no .batchml-site.json", *REG, "html", "-o", "reg")
usage("the following arguments are required: uri", *REG, "import-mlflow")
bad(BAD, "nowhere is not a folder: no MLflow file store there", *REG, "import-mlflow", "nowhere")
bad(BAD, "folder holds no registered models (no models/ folder)", *REG, "import-mlflow", "folder")
bad(BAD, "no SQLite database at", *REG, "import-mlflow", "sqlite:///nowhere.db", "--model", "jets")
bad(BAD, "garbage.bin cannot be read as a SQLite database", *REG, "import-mlflow",
    "sqlite:///garbage.bin")  # fmt: skip
bad(BAD, "'ftp://x/mlruns' is not an MLflow store URI", *REG, "import-mlflow", "ftp://x/mlruns")

# --- package ------------------------------------------------------------------------------
BUILD = ("package", "build", "jets/1", "--root", "reg", "-o")
usage("the following arguments are required: SUBCOMMAND", "package")
usage("the following arguments are required: model_uri, -o/--output", "package", "build")
usage("the following arguments are required: -o/--output", "package", "build", "jets/1")
bad(BAD, "no committed version nosuch in reg", "package", "build", "nosuch", "--root", "reg",
    "-o", "out")  # fmt: skip
bad(BAD, "batchml:bytes/1 has no file 'input_example.npz'", "package", "build", "bytes/1",
    "--root", "reg", "-o", "out")  # fmt: skip
bad(BAD, "is not a batchml registry", "package", "build", "jets/1", "--root", "folder", "-o", "o")
bad(BAD, "is not a batchml registry", "package", "build", "jets/1", "-o", "o")
bad(BAD, "garbage.bin already exists and is not empty", *BUILD, "garbage.bin")
bad(BAD, "the package folder /dev/null/x cannot be made: /dev/null is not a folder", *BUILD,
    "/dev/null/x")  # fmt: skip
bad(BAD, "garbage.bin is not a folder", *BUILD, "garbage.bin/x")
bad(BAD, "reg already exists and is not empty", *BUILD, "reg")
for opset, says in (("0", "is not a positive whole number"), ("x", "is not a positive whole")):
    usage(f"argument --opset: {opset!r} {says}", *BUILD, "out", "--opset", opset)
for opset in ("5", "99"):
    bad(BAD, f"opset {opset} are out of range", *BUILD, "out", "--opset", opset)
usage("argument --max-batch: '0' is not a positive whole number", *BUILD, "out",
    "--max-batch", "0")  # fmt: skip
usage("argument --triton-backend: invalid choice: 'tensorrt'", *BUILD, "out",
    "--triton-backend", "tensorrt")  # fmt: skip
for flag in ("--int8", "--fp16", "--no-bench", "--publish", "--triton-checksum"):
    bad(BAD, "batchml:jets/1 has no file 'input_example.npz'", *BUILD, "out", flag)
usage("the following arguments are required: folder", "package", "bench")
bad(BAD, "missing does not exist: it is not a package folder", "package", "bench", "missing")
bad(BAD, "folder has no metadata.json: it is not a package folder", "package", "bench", "folder")
bad(BAD, "garbage.bin has no readable metadata.json", "package", "bench", "garbage.bin")
bad(BAD, "broken has no readable metadata.json", "package", "bench", "broken",
    files={"broken/metadata.json": "{not json"})  # fmt: skip
bad(BAD, "a metadata.json that is not a JSON object", "package", "bench", "broken",
    files={"broken/metadata.json": "[1]"})  # fmt: skip
bad(BAD, "holds no largest batch (max_batch: 'x')", "package", "bench", "broken",
    files={"broken/metadata.json": '{"max_batch": "x"}'})  # fmt: skip
# onnxruntime makes its own cache folder in the home when it first opens a model
bad(BAD, "ONNX Runtime cannot load fakepkg/model.onnx", "package", "bench", "fakepkg",
    may_create=("home/.cache/Microsoft", "home/.cache/Microsoft/*"))  # fmt: skip
for seconds in ("-1", "0", "nan", "inf", "x"):
    usage(f"argument --seconds: {seconds!r} is not a number of seconds above 0",
        "package", "bench", "fakepkg", f"--seconds={seconds}")  # fmt: skip
usage("argument --max-batch: '-3' is not a positive whole number", "package", "bench",
    "fakepkg", "--max-batch=-3")  # fmt: skip
SERVE = ("package", "serve", "servable", "--tritonserver", "fake-tritonserver")
usage("the following arguments are required: folder", "package", "serve")
for folder in ("missing", "folder", "garbage.bin", "fakepkg"):
    bad(BAD, "holds no Triton repository", "package", "serve", folder)
bad(BAD, "--tritonserver missing is not an executable file", "package", "serve", "servable",
    "--tritonserver", "missing")  # fmt: skip
bad(BAD, "--tritonserver garbage.bin is not an executable file", "package", "serve", "servable",
    "--tritonserver", "garbage.bin")  # fmt: skip
bad(BAD, "--host 'no such host.invalid' is not an address of this machine", *SERVE, "--host",
    "no such host.invalid")  # fmt: skip
bad(BAD, "the server log /dev/null/x cannot be made", *SERVE, "--log", "/dev/null/x")
bad(BAD, "the server log folder is a folder", *SERVE, "--log", "folder")
bad(BAD, "the HTTP, gRPC and metrics ports must differ", *SERVE, "--http-port", "9000",
    "--grpc-port", "9000")  # fmt: skip
bad(BAD, "ports must differ, not 9001, 9001", *SERVE, "--grpc-port", "9001",
    "--metrics-port", "9001")  # fmt: skip
for flag in ("--http-port", "--grpc-port", "--metrics-port"):
    for port in ("0", "70000", "x"):
        usage(f"argument {flag}: {port!r} is not a whole number from 1 to 65535", *SERVE,
            flag, port)  # fmt: skip

# --- data ---------------------------------------------------------------------------------
usage("the following arguments are required: SUBCOMMAND", "data")
usage("the following arguments are required: URL", "data", "inspect")
bad(BAD, "no such file: missing.root", "data", "inspect", "missing.root")
bad(BAD, "garbage.bin is not a ROOT file: it starts with", "data", "inspect", "garbage.bin")
bad(BAD, "folder is a folder, not a ROOT file", "data", "inspect", "folder")
bad(BAD, "empty.txt is not a ROOT file", "data", "inspect", "empty.txt")
bad(BAD, "no file matches *.nomatch", "data", "inspect", "*.nomatch")
bad(BAD, "no such file: missing.root", "data", "inspect", "events.root", "missing.root")
DATA = ("data", "bench", "events.root", "--features", "x")
bad(BAD, "no feature columns: features is empty", "data", "bench", "events.root")
usage("argument --features: expected at least one argument", "data", "bench", "events.root",
    "--features")  # fmt: skip
bad(BAD, "no branch 'nope' in events.root", "data", "bench", "events.root", "--features", "nope")
bad(BAD, "no tree 'nope' in events.root", *DATA, "--tree", "nope")
bad(BAD, "garbage.bin is not a ROOT file", "data", "bench", "garbage.bin", "--features", "x")
bad(BAD, "no such file: missing.root", "data", "bench", "missing.root", "--features", "x")
for flag, value, says in (
    ("--batch-size", "0", "is not a positive whole number"),
    ("--batch-size", "-1", "is not a positive whole number"),
    ("--batch-size", "1e3", "is not a positive whole number"),
    ("--workers", "-1", "is not a whole number of 0 or more"),
    ("--workers", "two", "is not a whole number of 0 or more"),
):
    usage(f"argument {flag}: {value!r} {says}", *DATA, f"{flag}={value}")
for value, says in (
    ("abc", "'abc' is not a size"),
    ("0", "step_size=0 is neither a number of entries nor a size"),
    ("-5 MB", "'-5 MB' is not a size"),
    ("0 MB", "step_size='0 MB' is neither a number of entries nor a size"),
    ("", "'' is not a size"),
):
    bad(BAD, says, *DATA, f"--step-size={value}")
for flag, value, says in (
    ("--shuffle-buffer", "-1", "'-1' is not a size"),
    ("--shuffle-buffer", "lots", "'lots' is not a size"),
    ("--jagged", "x=0", "the length to pad or clip to must be a whole number of at least 1"),
    ("--jagged", "nope=3", "no branch 'nope' in events.root"),
    ("--jagged", "x=3", "'x' holds one number per entry: list it in features, not jagged"),
    ("--target", "nope", "no branch 'nope' in events.root"),
    ("--weights", "nope", "no branch 'nope' in events.root"),
    ("--cut", "x >", "cut 'x >' is not an expression"),
    ("--cut", "nope > 1", "no branch 'nope' in events.root"),
    ("--cut", "__import__('os').system('id')", "which is not one of the functions"),
    ("--cut", "x.__class__", "cut 'x.__class__' uses 'x.__class__', which a cut may not use"),
):
    bad(BAD, says, *DATA, flag, value)
for value in ("x", "x=a", "=3", "x=-1"):
    usage(f"argument --jagged: {value!r} is not BRANCH=LENGTH", *DATA, "--jagged", value)
