"""batchml._compat.optuna: Optuna's private names still mean what batchml reads them for.

When a test here fails, an Optuna release changed: check each name against the
new release, then update the module (and its CHECKED_ON) or drop the reach.
"""

from __future__ import annotations

from importlib.metadata import version

import optuna
import pytest
from optuna.storages import InMemoryStorage

from batchml._compat.optuna import CHECKED_ON, enqueued_params, storage_of, study_id, trial_id


def test_this_optuna_is_the_one_the_private_names_were_checked_on() -> None:
    installed = version("optuna")
    assert installed == CHECKED_ON, (
        f"batchml._compat.optuna was checked on optuna {CHECKED_ON}, this is {installed}: "
        "check Study._storage, Study._study_id, Trial._trial_id and FrozenTrial._trial_id "
        "there, then set CHECKED_ON"
    )


@pytest.fixture
def study() -> optuna.Study:
    storage = InMemoryStorage()
    optuna.create_study(study_name="other", storage=storage)  # so ids are not all 0
    return optuna.create_study(study_name="compat", storage=storage)


def test_the_study_writes_through_the_storage_it_was_given(study: optuna.Study) -> None:
    storage = storage_of(study)  # Study._storage
    assert isinstance(storage, InMemoryStorage), "Study._storage moved"
    study.set_user_attr("seen", 1)
    assert storage.get_study_user_attrs(study_id(study)) == {"seen": 1}


def test_the_study_id_is_the_storage_s(study: optuna.Study) -> None:
    storage = storage_of(study)
    assert study_id(study) == storage.get_study_id_from_name("compat"), "Study._study_id moved"


def test_a_trial_s_id_is_the_storage_s_for_a_live_and_a_frozen_trial(study: optuna.Study) -> None:
    storage = storage_of(study)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    live = study.ask()
    expected = storage.get_trial_id_from_study_id_trial_number(study_id(study), live.number)
    assert trial_id(live) == expected, "Trial._trial_id moved"
    for frozen in study.trials:
        found = storage.get_trial_id_from_study_id_trial_number(study_id(study), frozen.number)
        assert trial_id(frozen) == found, "FrozenTrial._trial_id moved"


def test_an_enqueued_trial_keeps_its_parameters_before_any_suggest(study: optuna.Study) -> None:
    study.enqueue_trial({"x": 0.25})
    waiting = study.ask()  # no suggest yet: params is empty, the enqueued ones wait
    frozen = storage_of(study).get_trial(trial_id(waiting))
    assert frozen.params == {} and enqueued_params(frozen) == {"x": 0.25}, (
        "Study.enqueue_trial no longer keeps its parameters in system_attrs['fixed_params']"
    )
    assert enqueued_params(storage_of(study).get_trial(trial_id(study.ask()))) == {}
