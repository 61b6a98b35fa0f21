"""A study driver run as its own process, so a test can SIGKILL it half way."""

import sys

from batchml.hpo import run_study
from tests.unit import hpo_objectives

if __name__ == "__main__":
    run_study(
        hpo_objectives.slow_square,
        n_trials=int(sys.argv[1]),
        site="local",
        max_jobs=1,
        study_name="killed",
        storage=sys.argv[2],
        progress=False,
    )
