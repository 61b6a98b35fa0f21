"""Reading `squeue --json` and `sacct --json` into JobInfo rows: interpretation only, no I/O.

The JSON differs between Slurm releases: 22.05 gives plain numbers and one state
string, 23.02 and later give numbers as ``{"set": ..., "number": ...}`` and
states as lists of flags. Both are read here, so the backend that runs the
commands (slurm.py) never looks inside a record.

Ids follow Slurm's own notation: ``123`` for a job, ``123_4`` for task 4 of
array 123. squeue shows the not-yet-started tasks of an array as one record
(``array_task_string`` such as ``2-9%2``); it is expanded into one row per task.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from batchml.backends.base import JobInfo, JobState
from batchml.config.units import is_count

# Base states after which a job never runs again, and what they mean to a user.
_FINAL = {
    "COMPLETED": JobState.COMPLETED,
    "CANCELLED": JobState.CANCELLED,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
}
_ACTIVE = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.HELD,
    "STOPPED": JobState.HELD,
    "REQUEUE_HOLD": JobState.HELD,
}
_HOLD_REASONS = frozenset({"JobHeldUser", "JobHeldAdmin"})
# GPU counts in TRES strings: "gres:gpu:2", "gres/gpu:a100:2", "gres/gpu=2".
_GPUS = re.compile(r"gres[:/]gpu(?::[^:,=]+)?[:=](\d+)")


def number(value: Any) -> int | None:
    """A JSON number of any release: 22.05 plain, 23.02+ ``{"set", "infinite", "number"}``."""
    if isinstance(value, Mapping):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def job_state(state: Any, reason: str | None = None) -> JobState:
    """The JobState for a Slurm state (a string, or a list of flags whose first is the base)."""
    base = state[0] if isinstance(state, list) and state else state
    if not isinstance(base, str):
        return JobState.UNKNOWN
    if base == "PENDING" and reason in _HOLD_REASONS:
        return JobState.HELD
    return _FINAL.get(base) or _ACTIVE.get(base, JobState.UNKNOWN)


def gpu_count(*tres: str | None) -> int:
    """GPUs in the first TRES string that names any (per node, per job or allocated)."""
    for text in tres:
        match = _GPUS.search(text or "")
        if match:
            return int(match.group(1))
    return 0


def array_tasks(spec: str) -> list[int]:
    """Task ids of an array range such as ``0-3,7,10-14:2%4`` (the %limit is dropped)."""
    tasks: list[int] = []
    for part in spec.split("%")[0].split(","):
        bounds, _, step = part.partition(":")
        first, _, last = bounds.partition("-")
        if is_count(first.strip()):
            stop = int(last) if last else int(first)
            tasks.extend(range(int(first), stop + 1, int(step) if step else 1))
    return tasks


def squeue_rows(
    payload: Mapping[str, Any], *, user_id: int | None = None, now: float | None = None
) -> Iterator[JobInfo]:
    """One JobInfo per job or array task in an `squeue --json` answer, of ``user_id`` if given.

    squeue ignores its filters (--me, --jobs) with --json on 22.05, so the
    answer holds everyone's jobs and the filtering is done here.
    """
    clock = time.time() if now is None else now
    for record in payload.get("jobs", ()):
        if user_id is not None and number(record.get("user_id")) != user_id:
            continue
        info = _squeue_row(record, clock)
        pending = record.get("array_task_string") or ""
        array_id = number(record.get("array_job_id"))
        if pending and array_id:
            for task in array_tasks(pending):
                yield dataclasses.replace(info, id=f"{array_id}_{task}")
        else:
            yield info


def _squeue_row(record: Mapping[str, Any], now: float) -> JobInfo:
    state = job_state(record.get("job_state"), record.get("state_reason"))
    start = number(record.get("start_time")) or 0
    end = number(record.get("end_time")) or 0
    runtime = None
    if state is JobState.RUNNING and start:
        runtime = timedelta(seconds=max(0, int(now) - start))
    elif state.finished and start and end >= start:
        runtime = timedelta(seconds=end - start)
    nodes = record.get("node_count")
    per_node = gpu_count(record.get("tres_per_node"))
    gpus = (
        per_node * (number(nodes) or 1)
        if per_node
        else gpu_count(
            record.get("tres_per_job"), record.get("tres_alloc_str"), record.get("tres_req_str")
        )
    )
    return JobInfo(
        id=_job_id(record["job_id"], record.get("array_job_id"), record.get("array_task_id")),
        name=str(record.get("name", "")),
        state=state,
        gpus=gpus,
        runtime=runtime,
        node=record.get("nodes") or None,
        reason=_reason(record.get("state_reason")),
    )


def sacct_rows(payload: Mapping[str, Any]) -> Iterator[JobInfo]:
    """One JobInfo per job in an `sacct --json` answer (jobs that have left the queue)."""
    for record in payload.get("jobs", ()):
        state = record.get("state") or {}
        elapsed = number((record.get("time") or {}).get("elapsed"))
        allocated = (record.get("tres") or {}).get("allocated") or ()
        gpus = sum(
            number(t.get("count")) or 0
            for t in allocated
            if t.get("type") == "gres" and t.get("name") == "gpu"
        )
        array = record.get("array") or {}
        yield JobInfo(
            id=_job_id(record["job_id"], array.get("job_id"), array.get("task_id")),
            name=str(record.get("name", "")),
            state=job_state(state.get("current"), state.get("reason")),
            gpus=gpus,
            runtime=None if elapsed is None else timedelta(seconds=elapsed),
            node=record.get("nodes") or None,
            reason=_reason(state.get("reason")),
        )


def _reason(text: Any) -> str | None:
    """Slurm's reason for a pending or failed job; it writes "None" when there is none."""
    return text if isinstance(text, str) and text not in ("", "None") else None


def _job_id(job_id: Any, array_job_id: Any, array_task_id: Any) -> str:
    """``ARRAY_TASK`` for an array task (as scancel and sacct accept it), else the job id."""
    array_id, task = number(array_job_id), number(array_task_id)
    return f"{array_id}_{task}" if array_id and task is not None else str(number(job_id))
