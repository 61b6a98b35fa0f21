"""Objectives the HPO tests send to workers: importable, so they travel by reference."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from batchml.hpo import TrialContext


def job_id() -> str:
    """The batch job this runs in: Slurm's id, or HTCondor's ClusterId.ProcId from the job ad."""
    if "SLURM_JOB_ID" in os.environ:
        return os.environ["SLURM_JOB_ID"]
    ad = os.environ.get("_CONDOR_JOB_AD")
    if not ad:
        return ""
    with open(ad) as lines:
        values = dict(line.rstrip("\n").split(" = ", 1) for line in lines if " = " in line)
    return f"{values['ClusterId']}.{values['ProcId']}"


def quadratic(trial: Any, ctx: TrialContext) -> float:
    """Records its devices and run interval, so tests can check slot exclusivity."""
    return _recorded_quadratic(trial, 0.05)


def quadratic_for_a_second(trial: Any, ctx: TrialContext) -> float:
    """``quadratic`` held for a second: long enough for the trials of a job to overlap."""
    return _recorded_quadratic(trial, 1.0)


def _recorded_quadratic(trial: Any, seconds: float) -> float:
    trial.set_user_attr("seen_devices", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    trial.set_user_attr("job", job_id())
    trial.set_user_attr("t_start", time.time())
    x = trial.suggest_float("x", -10.0, 10.0)
    y = trial.suggest_int("y", -3, 3)
    time.sleep(seconds)
    trial.set_user_attr("t_end", time.time())
    return (x - 2.0) ** 2 + (y + 1) ** 2


def records_mps(trial: Any, ctx: TrialContext) -> float:
    """Records the CUDA MPS folders the trial was given (none without an MPS daemon)."""
    trial.set_user_attr("mps_pipe", os.environ.get("CUDA_MPS_PIPE_DIRECTORY", ""))
    return _recorded_quadratic(trial, 0.0)


def learning_curve(trial: Any, ctx: TrialContext) -> float:
    """Reports 10 intermediate values; bad rates stay high, so a median pruner cuts them."""
    rate = trial.suggest_float("rate", 0.0, 1.0)
    value = 1.0
    for step in range(10):
        value = 1.0 - rate * (step + 1) / 10
        trial.report(value, step)
        if trial.should_prune():
            import optuna

            raise optuna.TrialPruned()
    return value


def raises(trial: Any, ctx: TrialContext) -> float:
    trial.suggest_float("x", 0.0, 1.0)
    raise ValueError("bad objective")


def crashes(trial: Any, ctx: TrialContext) -> float:
    trial.suggest_float("x", 0.0, 1.0)
    os._exit(3)


def kills_its_worker_once(trial: Any, ctx: TrialContext) -> float:
    """Trial 1's first attempt kills the dask worker running it, as a node loss would."""
    x = trial.suggest_float("x", -1.0, 1.0)
    trial.report(x * 10, 0)
    if trial.number == 1 and ctx.attempt == 1:
        forkserver = os.getppid()
        with open(f"/proc/{forkserver}/stat") as stat:
            worker = int(stat.read().rsplit(")", 1)[1].split()[1])
        os.kill(worker, 9)
        time.sleep(30)  # dies with its worker's process group long before this ends
    return x * x


def _square_after(trial: Any, seconds: float) -> float:
    """x squared, after ``seconds`` of "training"; the trial records its batch job."""
    trial.set_user_attr("job", job_id())
    x = trial.suggest_float("x", -1.0, 1.0)
    time.sleep(seconds)
    return x * x


def slow_square(trial: Any, ctx: TrialContext) -> float:
    return _square_after(trial, 0.3)


def waits_on_first_attempt(trial: Any, ctx: TrialContext) -> float:
    """Trial 1's first attempt waits (so a test can remove its worker job); others are quick."""
    trial.set_user_attr("job", job_id())
    x = trial.suggest_float("x", -1.0, 1.0)
    trial.report(x, 0)
    if trial.number == 1 and ctx.attempt == 1:
        time.sleep(120)
    time.sleep(0.8)  # long enough for a replacement worker job to take part
    return x * x


def segfaults(trial: Any, ctx: TrialContext) -> float:
    import signal

    trial.suggest_float("x", 0.0, 1.0)
    os.kill(os.getpid(), signal.SIGSEGV)
    return 0.0


def terminated_once(trial: Any, ctx: TrialContext) -> float:
    """Killed with SIGTERM on its first attempt, as scancel or condor_rm would."""
    import signal

    x = trial.suggest_float("x", 0.0, 1.0)
    if ctx.attempt == 1:
        os.kill(os.getpid(), signal.SIGTERM)
    return x


def one_second(trial: Any, ctx: TrialContext) -> float:
    return _square_after(trial, 1.0)


def eight_seconds(trial: Any, ctx: TrialContext) -> float:
    return _square_after(trial, 8.0)


def writes_in_scratch(trial: Any, ctx: TrialContext) -> float:
    """Writes its scratch folder's path into a file there (the tests find it kept)."""
    (ctx.scratch_dir / "written.txt").write_text(str(ctx.scratch_dir))
    return 0.0


IO_EPOCHS = 3
STEP_S = 0.2  # the compute-bound trial's "training step": sleeping, so load cannot stretch it


def reads_root_files(trial: Any, ctx: TrialContext, *, remote: str, local: list[str]) -> float:
    """Even trials read ``remote`` (root://) inline with nothing to do per batch: I/O-bound.
    Odd trials read ``local`` files ahead in a thread while each batch takes ``STEP_S``:
    compute-bound. Each reports once an epoch, so its reading is recorded as it goes."""
    from batchml.data import RootDataset
    from batchml.demo.sample import FLAT_FEATURES

    io_bound = trial.number % 2 == 0
    options: dict[str, Any] = (
        {"prefetch": None} if io_bound else {"prefetch_in": "thread", "reader_priority": "normal"}
    )
    dataset = RootDataset(remote if io_bound else local, features=list(FLAT_FEATURES),
                          target="label", batch_size=500, output="numpy", **options)  # fmt: skip
    for epoch in range(IO_EPOCHS):
        dataset.set_epoch(epoch)
        for _ in dataset:
            if not io_bound:
                time.sleep(STEP_S)
        trial.report(float(epoch), epoch)
    return float(trial.number)


def reads_then_is_killed_once(trial: Any, ctx: TrialContext, *, files: list[str]) -> float:
    """Reads ``files`` once and reports; its first attempt is then killed with SIGKILL, as a
    preempted job's processes are: what it read must be in the study all the same."""
    import signal

    from batchml.data import RootDataset

    dataset = RootDataset(files, features=["ht", "mbb"], target="label", output="numpy")
    for _ in dataset:
        pass
    trial.report(1.0, 0)
    if ctx.attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return 1.0


@dataclass(frozen=True)
class KillsItsSiteOnce:
    """The first trial on each of ``sites`` kills every process of its worker (the worker's
    whole session: nanny, worker, trial processes), as a site whose nodes all go would;
    ``marker``, a file made once per site, tells the first trial from the others."""

    sites: tuple[str, ...]
    marker: str

    def __call__(self, trial: Any, ctx: TrialContext) -> float:
        x = trial.suggest_float("x", -1.0, 1.0)
        trial.report(x * 10, 0)
        time.sleep(0.3)
        if ctx.site in self.sites:
            try:
                marker = f"{self.marker}-{ctx.site}"
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.killpg(os.getpgid(0), signal.SIGKILL)
                time.sleep(30)  # dies with its worker's session long before this ends
        return x * x


GB = 10**9


def uses_three_gb(trial: Any, ctx: TrialContext) -> float:
    """``quadratic_for_a_second`` that states a peak of 3 GB of GPU memory (as a trial whose
    memory torch's allocator does not see would), for the packer to count."""
    from batchml.hpo.outcome import GPU_PEAK_ATTR

    trial.set_user_attr(GPU_PEAK_ATTR, 3 * GB)
    return _recorded_quadratic(trial, 1.0)


def out_of_memory_at_first(trial: Any, ctx: TrialContext) -> float:
    """Its first attempt runs out of CUDA memory after two seconds (beside the trial that
    started with it, when two share a device); a retry succeeds."""
    if ctx.attempt == 1:
        import torch

        trial.suggest_float("x", -10.0, 10.0)
        trial.suggest_int("y", -3, 3)
        time.sleep(2.0)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return _recorded_quadratic(trial, 0.5)


def holds_two_gb_on_cuda(trial: Any, ctx: TrialContext) -> float:
    """``quadratic_for_a_second`` holding 2 GB on the real GPU (the gpu-marked tests)."""
    import torch

    block = torch.empty(2 * GB, dtype=torch.uint8, device="cuda")
    value = _recorded_quadratic(trial, 1.0)
    del block
    return value
