"""A real study whose trials read real ROOT files: one over the XRootD server with nothing to
do per batch (I/O-bound), one from local files with a long step (compute-bound). Each trial's
reading is stored in the study, and the report (in Chromium) and `hpo status` flag exactly
the I/O-bound one, with what would help."""

from __future__ import annotations

import functools
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from batchml.cli import main
from batchml.demo.sample import write_sample
from batchml.hpo import run_study
from batchml.hpo.io_profile import IO_BOUND_FRACTION
from batchml.hpo.outcome import IO_ATTR
from tests.unit import hpo_objectives as objectives
from tests.unit.browser import render

pytestmark = [pytest.mark.xrootd, pytest.mark.chromium, pytest.mark.timeout(300)]

REMOTE_EVENTS, LOCAL_EVENTS = 200_000, 3000
KEYS = {"format", "elapsed_s", "wait_s", "consume_s", "read_s", "bytes_read", "events_read",
        "events_out", "batches", "cache_hits", "cache_copies", "bytes_from"}  # fmt: skip


@pytest.fixture(scope="module")
def remote_folder(xrootd_env: dict[str, str]) -> Iterator[Path]:
    """4 files of 50k events in a folder of its own inside the server's export."""
    path = Path(xrootd_env["BATCHML_XROOTD_DATA"]) / f"io-{uuid.uuid4().hex}"
    write_sample(path, REMOTE_EVENTS, files_per_class=2)
    for file in path.iterdir():
        file.chmod(0o644)
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture()
def study(
    xrootd_env: dict[str, str], remote_folder: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[optuna.Study, Path]:  # fmt: skip
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    local = write_sample(tmp_path / "local", LOCAL_EVENTS, files_per_class=2)
    server = xrootd_env["BATCHML_XROOTD_URL"].rstrip("/")
    objective = functools.partial(
        objectives.reads_root_files,
        remote=f"{server}/{remote_folder}/*.root",
        local=[str(f) for f in (*local.signal, *local.background)],
    )
    journal = tmp_path / "io.journal"
    found = run_study(objective, n_trials=2, site="local", study_name="io", max_jobs=1,
                      storage=str(journal), progress=False)  # fmt: skip
    return found, journal


def test_each_trial_records_its_reading_and_only_the_io_bound_one_is_flagged(
    study: tuple[optuna.Study, Path], xrootd_env: dict[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    found, journal = study
    trials = {t.number % 2 == 0: t for t in found.trials}
    assert [t.state for t in found.trials] == [TrialState.COMPLETE] * 2
    io, compute = trials[True].user_attrs[IO_ATTR], trials[False].user_attrs[IO_ATTR]
    server = xrootd_env["BATCHML_XROOTD_URL"].rstrip("/")
    for attr in (io, compute):
        assert set(attr) == KEYS and attr["format"] == 1
        assert attr["bytes_read"] > 0 and sum(attr["bytes_from"].values()) == pytest.approx(
            attr["bytes_read"], rel=1e-3
        )
        assert 0 < attr["wait_s"] < attr["elapsed_s"] and attr["cache_hits"] == 0
    epochs = objectives.IO_EPOCHS
    # read inline: exactly every entry once an epoch, all from the server
    assert io["events_read"] == REMOTE_EVENTS * epochs and set(io["bytes_from"]) == {server}
    assert io["wait_s"] > IO_BOUND_FRACTION * io["elapsed_s"]
    # read ahead in a thread: the next epoch's first chunk may be read already
    assert compute["events_out"] == LOCAL_EVENTS * epochs
    assert compute["events_read"] >= LOCAL_EVENTS * epochs and set(compute["bytes_from"]) == {
        "local"
    }
    assert compute["consume_s"] >= compute["batches"] * objectives.STEP_S
    assert compute["wait_s"] < IO_BOUND_FRACTION * compute["elapsed_s"]

    page = tmp_path / "report.html"
    assert main(["hpo", "report", "io", "--storage", str(journal), "-o", str(page)]) == 0
    seen = render(page)
    assert seen.images and all(i.complete and i.width > 0 for i in seen.images)
    flagged = [line for line in seen.text.splitlines() if line.endswith("\tI/O-bound")]
    io_number, compute_number = trials[True].number, trials[False].number
    assert [line.split("\t")[0] for line in flagged] == [str(io_number)]
    assert f"{server} " in flagged[0]  # where its bytes came from
    (advice,) = [line for line in seen.text.splitlines() if line.startswith("I/O-bound: ")]
    assert f"trial(s) {io_number}." in advice
    assert "cache_dir" in advice and "decompression_threads" in advice and server in advice
    (row,) = [line for line in seen.text.splitlines() if line.startswith(f"{compute_number}\t")]
    assert "\tlocal " in row and "I/O-bound" not in row

    capsys.readouterr()
    assert main(["--no-color", "hpo", "status", "io", "--storage", str(journal)]) == 0
    status = capsys.readouterr().out
    assert "data: 2 trial(s) measured" in status
    (bound,) = [line for line in status.splitlines() if line.startswith("I/O-bound")]
    assert f"trial {io_number} (" in bound and f"trial {compute_number} (" not in bound
