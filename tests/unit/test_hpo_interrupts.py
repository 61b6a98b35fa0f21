"""Ctrl-C and SIGTERM stop a search cleanly: trials recorded, workers ended, status 130/143.

The searches run in processes of their own (a signal to pytest would stop the
tests), on the embedded default. Every process a search starts inherits a
marker in its environment, so the test finds its own leftovers and nobody
else's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from optuna.trial import TrialState

from batchml.hpo.interrupts import StopRequests, StudyInterrupted
from batchml.hpo.outcome import OUTCOME_ATTR, RETRY_OF_ATTR, has_ended
from tests.unit.hpo_watch import SLOW_OBJECTIVE, read_trials, stop_mid_search

N_TRIALS = 6
MARKER = "BATCHML_TEST_SEARCH"


def _env(folder: Path, mark: str) -> dict[str, str]:
    tmp = folder / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(folder / "home"), "TMPDIR": str(tmp), MARKER: mark}


def _marked(mark: str) -> list[str]:
    """Live processes that inherited ``mark``."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get(MARKER) == mark:
                found.append(f"{process.pid} {' '.join(process.cmdline())[:160]}")
        except psutil.Error:
            continue
    return found


def _see_workers(mark: str) -> None:
    """Fail unless the marker finds the search's workers (else finding none proves nothing)."""
    assert any("dask_worker" in p for p in _marked(mark)), _marked(mark)


def _leftovers(mark: str) -> list[str]:
    """Live processes that inherited ``mark``, after giving them a few seconds to go."""
    deadline = time.monotonic() + 15
    while (found := _marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def _study_file(folder: Path, name: str) -> Path:
    (folder / "objective.py").write_text(SLOW_OBJECTIVE)
    study = folder / "study.yaml"
    study.write_text(
        f"study_name: {name}\nobjective: objective.py:objective\nsite: local\n"
        f"n_trials: {N_TRIALS}\nmax_jobs: 2\nstorage: {folder / 'study.journal'}\n"
    )
    return study


@pytest.mark.parametrize(
    ("sent", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_a_signalled_search_stops_cleanly_and_resumes_to_exactly_n_trials(
    sent: signal.Signals, status: int, tmp_path: Path
) -> None:
    name, mark = f"stopped-{sent.name.lower()}", uuid.uuid4().hex
    study, journal = _study_file(tmp_path, name), tmp_path / "study.journal"
    env = _env(tmp_path, mark)
    run = stop_mid_search(
        [sys.executable, "-m", "batchml.cli", "hpo", "run", str(study)], env, journal, name, sent,
        while_running=lambda: _see_workers(mark),
    )  # fmt: skip
    err = run.stderr
    assert run.returncode == status, err
    assert f"resume with: batchml hpo resume {name} --storage {journal}" in err, err
    assert "Traceback" not in err, err
    assert _leftovers(mark) == []
    assert not list((tmp_path / "tmp").glob("batchml-dask-tls-*"))  # credentials removed

    trials = read_trials(journal, name)
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.user_attrs.get(OUTCOME_ATTR) == "interrupted"]
    assert interrupted and all(t.state == TrialState.FAIL for t in interrupted)
    assert all(f"stopped by {sent.name}" in t.user_attrs["batchml.reason"] for t in interrupted)

    resume = subprocess.run(
        [sys.executable, "-m", "batchml.cli", "hpo", "resume", name, "--storage", str(journal)],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert resume.returncode == 0, resume.stderr
    trials = read_trials(journal, name)
    assert sum(has_ended(t) for t in trials) == N_TRIALS
    assert sum(t.state == TrialState.COMPLETE for t in trials) == N_TRIALS
    for stopped in interrupted:  # each retried once, with its parameters
        (retry,) = [t for t in trials if t.user_attrs.get(RETRY_OF_ATTR) == stopped.number]
        assert retry.state == TrialState.COMPLETE and retry.params == stopped.params
    assert _leftovers(mark) == []


API_CALLER = (
    SLOW_OBJECTIVE
    + """
import sys
from batchml.hpo import run_study

try:
    run_study(objective, n_trials=6, site="local", max_jobs=2, study_name=sys.argv[2],
              storage=sys.argv[1], progress=False)
except KeyboardInterrupt as exc:
    print("caught", type(exc).__name__, exc.stop.interrupted)
    sys.exit(7)
"""
)


def test_a_python_caller_gets_keyboard_interrupt(tmp_path: Path) -> None:
    journal, mark = tmp_path / "api.journal", uuid.uuid4().hex
    caller = stop_mid_search(
        [sys.executable, "-c", API_CALLER, str(journal), "api"], _env(tmp_path, mark), journal,
        "api",
    )  # fmt: skip
    out, err = caller.stdout, caller.stderr
    assert caller.returncode == 7, err
    interrupted = [
        t for t in read_trials(journal, "api") if t.user_attrs.get(OUTCOME_ATTR) == "interrupted"
    ]
    assert out.split() == ["caught", "StudyInterrupted", str(len(interrupted))]
    assert interrupted
    assert _leftovers(mark) == []


def test_the_first_signal_is_noted_a_second_raises_and_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopRequests("noted") as requests:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between two bytecodes of this thread
        assert requests.signal == signal.SIGTERM
        with pytest.raises(StudyInterrupted, match="'noted' stopped by SIGINT"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
