"""Command trials: a script with its arguments filled in, reporting through a file; torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from batchml.errors import InvalidValue
from batchml.hpo import run_study
from batchml.hpo.command import CommandObjective
from batchml.hpo.isolation import TrialContext
from batchml.hpo.outcome import OUTCOME_ATTR, REASON_ATTR, SCRATCH_ATTR

SCRIPTS = Path(__file__).parent / "commands"
SPACE = {"x": FloatDistribution(-1.0, 1.0)}


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")


def test_a_script_reports_its_curve_and_result_and_is_pruned() -> None:
    objective = CommandObjective("curve.py --x {x}", SPACE, base=SCRIPTS)
    study = run_study(
        objective, SPACE, n_trials=12, site="local", max_jobs=2, study_name="command",
        progress=False, sampler=optuna.samplers.RandomSampler(seed=3),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )  # fmt: skip
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert complete and study.get_trials(states=(TrialState.PRUNED,))
    for trial in complete:
        assert trial.value == pytest.approx(trial.params["x"] ** 2)
        assert sorted(trial.intermediate_values) == [0, 1, 2, 3]


def test_values_are_arguments_never_shell_syntax(tmp_path: Path) -> None:
    label = "a; touch pwned $(touch pwned2) `touch pwned3`"
    space = {"x": FloatDistribution(0.5, 0.5), "label": CategoricalDistribution([label])}
    objective = CommandObjective(
        [str(SCRIPTS / "curve.py"), "--x", "{x}", "--label={label}"], space
    )
    site = tmp_path / "keeps.yaml"  # keeps the trial's scratch folder, to look into it
    site.write_text(f"extends: local\npaths: {{scratch_dir: '{tmp_path}', keep_scratch: true}}\n")
    study = run_study(objective, space, n_trials=1, site=str(site), study_name="quoting",
                      progress=False, checkpoint_dir=tmp_path / "ck")  # fmt: skip
    assert study.trials[0].value == pytest.approx(0.25)
    scratch = Path(study.trials[0].user_attrs[SCRATCH_ATTR])
    assert (scratch / "seen.txt").read_text().splitlines()[0] == label
    assert not any(scratch.glob("pwned*"))


def test_a_failing_command_fails_its_trial_with_its_output() -> None:
    objective = CommandObjective("curve.py --x {x} --fail", SPACE, base=SCRIPTS)
    study = run_study(objective, SPACE, n_trials=1, site="local", study_name="failing",
                      progress=False)  # fmt: skip
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL and trial.user_attrs[OUTCOME_ATTR] == "raised"
    assert "diverged: loss is nan" in trial.user_attrs[REASON_ATTR]


def test_two_gpu_trials_run_under_torchrun_one_rank_per_gpu() -> None:
    objective = CommandObjective("ranks.py", {}, base=SCRIPTS)
    study = run_study(objective, {}, n_trials=2, site="local", gpus_per_trial=2, max_jobs=2,
                      study_name="torchrun", progress=False)  # fmt: skip
    assert [t.value for t in study.trials] == [22.0, 22.0]  # world size 2, two devices each
    assert {t.user_attrs["batchml.devices"] for t in study.trials} == {"0,1", "2,3"}


def test_a_program_that_is_not_a_python_script_runs_under_torchrun_as_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # what the worker sets for the slot
    objective = CommandObjective(
        ["sh", "-c", 'exec "$0" ranks.py', sys.executable], {}, base=SCRIPTS
    )  # a wrapper script, as sites use to load modules first
    (tmp_path / "ranks.py").write_text((SCRIPTS / "ranks.py").read_text())
    context = TrialContext(devices=("0", "1"), scratch_dir=tmp_path, checkpoint_dir=tmp_path,
                           site="local")  # fmt: skip
    assert objective(optuna.trial.FixedTrial({}), context) == 22.0  # world size 2, two GPUs


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-u", "ranks.py"], ["-m", "ranks"], ["-u", "ranks.py"]],
    ids=["interpreter with an option", "module", "option for the worker's Python"],
)
def test_an_interpreter_or_module_command_runs_under_torchrun(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    (tmp_path / "ranks.py").write_text((SCRIPTS / "ranks.py").read_text())
    objective = CommandObjective(command, {}, base=SCRIPTS)  # -m finds ranks.py in the scratch
    context = TrialContext(devices=("0", "1"), scratch_dir=tmp_path, checkpoint_dir=tmp_path,
                           site="local")  # fmt: skip
    assert objective(optuna.trial.FixedTrial({}), context) == 22.0  # world size 2, two GPUs


def test_a_relative_script_after_an_interpreter_is_found_from_the_study_folder(
    tmp_path: Path,
) -> None:
    objective = CommandObjective(
        [sys.executable, "-u", "curve.py", "--x", "{x}"], SPACE, base=SCRIPTS
    )
    scratch = tmp_path / "scratch"  # where the trial runs: no curve.py there
    scratch.mkdir()
    context = TrialContext(devices=(), scratch_dir=scratch, checkpoint_dir=tmp_path, site="local")
    trial = optuna.trial.FixedTrial({"x": 0.5})
    trial.suggest_float("x", -1.0, 1.0)  # as the study does before the command runs
    assert objective(trial, context) == pytest.approx(0.25)
    with pytest.raises(InvalidValue, match=r"nowhere\.py does not exist"):
        CommandObjective("python3 -X dev nowhere.py", {}, base=SCRIPTS)


def test_a_placeholder_outside_the_search_space_is_refused() -> None:
    with pytest.raises(InvalidValue, match=r"names \{lr\}") as caught:
        CommandObjective("curve.py --x {x} --lr {lr}", SPACE, base=SCRIPTS)
    assert "search_space" in (caught.value.hint or "")
    with pytest.raises(InvalidValue, match="does not exist"):
        CommandObjective("nowhere.py --x {x}", SPACE, base=SCRIPTS)
    with pytest.raises(InvalidValue, match="names no module"):
        CommandObjective("-m", SPACE)


def _batchml(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchml.cli", *args], capture_output=True, text=True,
        timeout=240, check=False, env={**os.environ, "HOME": str(home)},
    )  # fmt: skip


def test_a_study_file_with_a_command_runs_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "curve.py").write_text((SCRIPTS / "curve.py").read_text())
    study = tmp_path / "study.yaml"
    study.write_text(
        "study_name: cli-command\ncommand: curve.py --x {x}\nsite: local\nn_trials: 3\n"
        "search_space:\n  x: {type: float, low: 0.5, high: 0.6}\n"
    )
    run = _batchml("hpo", "run", str(study), home=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    best = _batchml("hpo", "best", "cli-command", "--json", home=tmp_path)
    answer = json.loads(best.stdout)
    assert answer["value"] == pytest.approx(answer["params"]["x"] ** 2)


def test_a_study_file_with_both_an_objective_and_a_command_is_refused(tmp_path: Path) -> None:
    study = tmp_path / "both.yaml"
    study.write_text("study_name: both\nobjective: t.py:f\ncommand: t.py\nn_trials: 1\n")
    run = _batchml("hpo", "run", str(study), home=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert str(study) in run.stderr and "exactly one of objective and command" in run.stderr
