"""Where a version came from, collected automatically and completed by the caller.

Six months later the question is "which code, which data, which trial made
this model?". What the process can see for itself is filled in here (user,
host, time, git commit and dirty flag of the working directory, batch job ids,
site, package versions); what only the caller knows (the HPO study and trial,
the data URLs with sizes or checksums, where an imported version came from) is
passed to ``publish``. Unknown keys are refused so a typo does not silently
drop provenance.
"""

from __future__ import annotations

import functools
import getpass
import os
import re
import socket
import subprocess
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from batchml.errors import InvalidValue

CALLER_KEYS = (
    "hpo_study", "hpo_trial", "hpo_run", "data", "job_ids", "site", "git_commit", "git_dirty",
    "imported_from",
)  # fmt: skip
PACKAGES = ("batchml", "torch", "numpy", "onnx", "onnxruntime", "optuna", "uproot", "awkward")


def collect(given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The lineage record: automatic facts, overridden by the caller's ``given`` values."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(CALLER_KEYS))
    if unknown:
        raise InvalidValue(
            f"unknown lineage keys {unknown}", hint=f"use only {', '.join(CALLER_KEYS)}"
        )
    commit, dirty = _git_state(os.getcwd())
    record: dict[str, Any] = {
        "user": user_name(),
        "host": socket.gethostname(),
        "time": now_iso(),
        "site": os.environ.get("BATCHML_SITE"),
        "job_ids": _job_ids(),
        "git_commit": commit,
        "git_dirty": dirty,
        "packages": _packages(),
        "hpo_study": None,
        "hpo_trial": None,
        "hpo_run": None,  # where the trial ran: host, GPUs, attempt, trials in the study
        "data": [],
    }
    record.update(given)
    return record


def user_name() -> str:
    """The login name, or the uid where the system has no name for it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        return str(os.getuid())


def now_iso() -> str:
    """UTC time with microseconds: sorts as text, and tells apart changes in one second."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@functools.lru_cache(maxsize=8)
def _git_state(cwd: str) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository around ``cwd``; (None, None) outside one."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def _job_ids() -> list[str]:
    """Slurm and HTCondor job ids of this process, read from what the schedulers set."""
    ids = []
    if "SLURM_JOB_ID" in os.environ:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        ids.append(f"slurm:{os.environ['SLURM_JOB_ID']}" + (f"_{task}" if task else ""))
    ad_path = os.environ.get("_CONDOR_JOB_AD")
    if ad_path and Path(ad_path).is_file():
        ad = Path(ad_path).read_text(errors="replace")
        cluster = re.search(r"^ClusterId\s*=\s*(\d+)", ad, re.MULTILINE)
        proc = re.search(r"^ProcId\s*=\s*(\d+)", ad, re.MULTILINE)
        if cluster:
            ids.append(f"htcondor:{cluster.group(1)}.{proc.group(1) if proc else 0}")
    return ids


@functools.lru_cache(maxsize=1)
def _packages() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
