"""The kinds of text a site file holds, each checked for the language it lands in.

A site value is pasted into a job script (bash), an HTCondor submit
description, an ``#SBATCH`` line or a dask worker's command line, sometimes
into several of them. A value that is fine in one can be syntax in another: a
line break in an attribute adds a submit statement, a ``;`` in a variable name
runs a command, a space in a log folder ends an ``#SBATCH`` option. Each type
here accepts only what reads back as the same value everywhere it goes, and
its error says what to write instead; ``site_schema.py`` builds the schema from them.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from batchml.config.submit_language import classad_problem, submit_problem
from batchml.errors import InvalidValue

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SLURM_NAME = re.compile(r"[A-Za-z0-9_.,+-]+")
SLURM_CONSTRAINT = re.compile(r"[A-Za-z0-9_.,:&|()\[\]*!+-]+")
_TOKEN = re.compile(r"[A-Za-z0-9_.@:+-]+")
_CLASSAD_NAME = re.compile(r"(MY\.|\+)[A-Za-z_][A-Za-z0-9_]*")
GPU_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+-]{0,63}")
_IMAGE = re.compile(r"[A-Za-z0-9/][A-Za-z0-9._/:@+-]*")
_SBATCH_OPTION = re.compile(r"--([a-z][a-z0-9-]*)(=[A-Za-z0-9_.,:+@/\[\]=-]+)?")
# bash's own variables: read-only, or set by bash again before a job could read them.
SHELL_OWN = frozenset(
    {
        "_", "BASHOPTS", "BASHPID", "BASH_ARGC", "BASH_ARGV", "BASH_COMMAND", "BASH_LINENO",
        "BASH_SOURCE", "BASH_SUBSHELL", "BASH_VERSINFO", "EPOCHREALTIME", "EPOCHSECONDS",
        "EUID", "FUNCNAME", "GROUPS", "HISTCMD", "LINENO", "PPID", "RANDOM", "SECONDS",
        "SHELLOPTS", "SRANDOM", "UID",
    }
)  # fmt: skip
# sbatch options batchml writes itself (or takes from the site's own fields).
_SBATCH_OWN = frozenset(
    {"array", "chdir", "error", "export", "input", "job-name", "open-mode", "output", "wrap"}
)
# A path: plain characters, and $NAME, ${NAME}, ${NAME:-default} or ${NAME:0:1} expansions.
_PATH_CHARS = r"[A-Za-z0-9_./@+,:~-]"
_EXPANSION = re.compile(
    rf"\$[A-Za-z_][A-Za-z0-9_]*"
    rf"|\$\{{[A-Za-z_][A-Za-z0-9_]*(:-{_PATH_CHARS}*|:[0-9]+(:[0-9]+)?)?\}}"
)


def _matching(pattern: re.Pattern[str], what: str, hint: str) -> AfterValidator:
    """A check that the whole value matches ``pattern``; the error names it as ``what``."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise InvalidValue(f"{value!r} is not {what}", hint=hint)
        return value

    return AfterValidator(check)


def _token(pattern: re.Pattern[str], what: str, example: str) -> AfterValidator:
    hint = f"write one word such as {example!r}: no spaces, quotes, '$' or line breaks"
    return _matching(pattern, what, hint)


def _check_path(value: str) -> str:
    """A folder as jobs and the submit host see it; $VARIABLES expand where it is used."""
    if not value.isprintable() or any(c.isspace() for c in value):
        raise InvalidValue(
            f"{value!r} is not a site path: it holds white space or a control character",
            hint="site paths go unquoted into #SBATCH lines and worker command lines: "
            "choose a folder without spaces or line breaks",
        )
    rest = _EXPANSION.sub("", value)
    bad = next((c for c in rest if not re.fullmatch(_PATH_CHARS, c)), None)
    if not value or bad is not None:
        shown = "it is empty" if bad is None else f"{bad!r} would be read as syntax there"
        raise InvalidValue(
            f"{value!r} is not a site path: {shown}",
            hint="use letters, digits and / . _ - + @ , : ~, with variables written "
            "$NAME, ${NAME}, ${NAME:-default} or ${NAME:0:1}",
        )
    return value


def _check_script_text(value: str) -> str:
    """Text that job scripts quote for bash and HTCondor worker jobs carry in their arguments."""
    problem = submit_problem(value, embedded=True)
    if problem:
        raise InvalidValue(
            f"{value!r} {problem}",
            hint="write it on one line, without control characters "
            "(a worker job's HTCondor description carries it)",
        )
    return value


def check_env_name(name: str) -> str:
    """``name`` if a job script can export it and read it back; InvalidValue otherwise."""
    if not ENV_NAME.fullmatch(name):
        raise InvalidValue(
            f"{name!r} is not an environment variable name",
            hint="use letters, digits and _ (not first a digit), such as OMP_NUM_THREADS",
        )
    if name in SHELL_OWN:
        raise InvalidValue(
            f"{name!r} is a variable bash sets itself or keeps read-only: the job's value "
            "would not hold (or the job script would stop)",
            hint="choose another name",
        )
    return name


def check_classad_entry(name: str, value: str) -> None:
    """An extra attribute's value: one ClassAd expression that the submit language can carry."""
    problem = submit_problem(value)
    if problem is None and "\\" in value.replace('\\"', ""):
        problem = (
            "holds a backslash, which the submit language reads in the old ClassAd syntax "
            '(only \\" is an escape there), so the attribute would not hold what is written'
        )
    problem = f"{name} = {value!r} {problem}" if problem else classad_problem(name, value)
    if problem:
        raise InvalidValue(
            problem,
            hint='write one ClassAd expression on one line, strings in double quotes: "ml"',
        )


def _check_sbatch_option(value: str) -> str:
    match = _SBATCH_OPTION.fullmatch(value)
    if match is None:
        raise InvalidValue(
            f"{value!r} is not one long sbatch option",
            hint="write one option per list item, such as '--reservation=gpu-week' "
            "(no spaces, quotes, '$' or line breaks)",
        )
    if match.group(1) in _SBATCH_OWN:
        raise InvalidValue(
            f"{value!r} sets --{match.group(1)}, which batchml sets itself",
            hint="remove it; batchml passes the job's name, folder and log files to sbatch",
        )
    return value


SitePath = Annotated[str, AfterValidator(_check_path)]
ScriptText = Annotated[str, AfterValidator(_check_script_text)]
EnvName = Annotated[str, AfterValidator(check_env_name)]
ClassAdName = Annotated[
    str,
    _matching(
        _CLASSAD_NAME,
        "a ClassAd attribute name",
        "use a name such as MY.Project or +Project (letters, digits, _); "
        "submit commands such as executable or queue are not attributes",
    ),
]
SbatchOption = Annotated[str, AfterValidator(_check_sbatch_option)]
SlurmName = Annotated[str, _token(SLURM_NAME, "a single Slurm name", "gpu")]
SlurmConstraint = Annotated[str, _token(SLURM_CONSTRAINT, "a Slurm constraint", "a100&ib")]
Token = Annotated[str, _token(_TOKEN, "a single word (a name or host)", "el9")]
GpuName = Annotated[str, _token(GPU_NAME, "a GPU model name", "A100")]
ImageRef = Annotated[str, _token(_IMAGE, "a container image", "docker://python:3.13")]
