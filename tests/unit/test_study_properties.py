"""Property tests of study files: any file is refused by field, or searched exactly as written.

Random study files (each key valid, junk, or missing; search spaces of every
type with random bounds, steps, log scales and choices, as YAML writes them)
either load, and then every parameter reaches Optuna unchanged and without a
warning (Optuna otherwise moves ``high`` behind the user's back, or refuses
mid-study), or are refused with a ConfigError naming fields of the file; and
`batchml hpo run` on a refused file exits 2 with an error and a hint line and
leaves no file behind.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from batchml.cli import main
from batchml.errors import ConfigError
from batchml.hpo.config import StudyConfig, load_config
from tests.unit.cli_sandbox import snapshot

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
NUMBER = st.one_of(st.integers(-20, 20), st.floats(-20, 20), st.sampled_from([0, 0.0, 1, 1e-5]))
PLAIN = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(-5, 5), st.text(max_size=5)
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value or junk of any type."""
    return st.one_of(strategy, JUNK)


RANGE = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["float", "int"])), "low": maybe(NUMBER), "high": maybe(NUMBER)},
    optional={
        "log": maybe(st.booleans()),
        "step": maybe(st.sampled_from([0.5, 0.25, 0.1, 1, 2, 3, 0, -1, 1e-3])),
        "choices": JUNK,
    },
)
CATEGORICAL = st.fixed_dictionaries(
    {"type": maybe(st.just("categorical")), "choices": maybe(st.lists(PLAIN, max_size=4))},
    optional={"low": JUNK, "log": maybe(st.booleans())},
)


@st.composite
def coherent(draw: st.DrawFn) -> dict[str, Any]:
    """A range parameter as a careful user writes it (some still cross Optuna's rules)."""
    kind = draw(st.sampled_from(["float", "int"]))
    low = draw(st.integers(1, 50)) if kind == "int" else draw(st.floats(1e-4, 10))
    step = draw(st.sampled_from([None, 1, 2])) if kind == "int" else None
    if kind == "float" and draw(st.booleans()):
        step = draw(st.sampled_from([0.5, 0.25, 0.1]))
    high = low + (step or 1) * draw(st.integers(1, 40))
    log = step is None and draw(st.booleans())
    return {"type": kind, "low": low, "high": high, **({"step": step} if step else {}), "log": log}


PARAMETERS = st.dictionaries(
    st.sampled_from(["lr", "width", "act"]), st.one_of(RANGE, CATEGORICAL, coherent()), max_size=3
)
CAREFUL = st.fixed_dictionaries(  # every key right but the search space, which may be anything
    {
        "study_name": st.just("s1"),
        "n_trials": st.integers(1, 50),
        "objective": st.just("train.py:objective"),
        "search_space": PARAMETERS,
    },
    optional={
        "direction": st.sampled_from(["minimize", "maximize"]),
        "max_jobs": st.integers(1, 9),
    },
)
JUNKY = st.fixed_dictionaries(
    {
        "study_name": maybe(st.from_regex(r"[a-z][a-z0-9._-]{0,8}", fullmatch=True)),
        "n_trials": maybe(st.integers(-2, 200)),
        "objective": maybe(st.just("train.py:objective")),
        "command": st.one_of(  # beside an objective: refused
            st.none(), st.sampled_from(["train.py --lr {lr}", ["train.py"], 5])
        ),
        "search_space": maybe(PARAMETERS),
    },
    optional={
        "direction": maybe(st.sampled_from(["minimize", "maximize"])),
        "gpus_per_trial": maybe(st.integers(-1, 70)),
        "trials_per_job": maybe(st.integers(-1, 70)),
        "max_jobs": maybe(st.integers(-1, 20_000)),
        "max_retries": maybe(st.integers(-1, 12)),
        "sampler": maybe(st.fixed_dictionaries({}, optional={"name": maybe(st.just("tpe"))})),
        "pruner": maybe(st.fixed_dictionaries({}, optional={"name": maybe(st.just("median"))})),
    },
).flatmap(lambda study: st.sampled_from([study, {**study, "bogus": 1}]))
STUDY = st.one_of(CAREFUL, JUNKY)
EXAMPLES = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def refused_fields(error: ConfigError) -> list[str]:
    return [p.field for p in error.problems]


def top_key(field: str) -> str:
    """'search_space.lr.low' -> 'search_space'; '(top level)' stays."""
    return field if field.startswith("(") else field.split(".")[0].split("[")[0].split(" ")[0]


def check_unchanged(parameter: Any, dist: optuna.distributions.BaseDistribution) -> None:
    """The distribution Optuna got is the one the file wrote, bound for bound."""
    if parameter.type == "categorical":
        assert isinstance(dist, optuna.distributions.CategoricalDistribution)
        assert list(dist.choices) == parameter.choices
        return
    assert isinstance(
        dist, optuna.distributions.IntDistribution | optuna.distributions.FloatDistribution
    )
    assert (dist.low, dist.high, dist.log) == (parameter.low, parameter.high, parameter.log)
    step = 1 if parameter.type == "int" and parameter.step is None else parameter.step
    assert dist.step == step
    assert all(math.isfinite(v) for v in (dist.low, dist.high))


@contextlib.contextmanager
def study_file(data: dict[str, Any]) -> Iterator[Path]:
    """``data`` written as a study file, as YAML writes it, in a folder of its own."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        yield path


def loaded(path: Path) -> StudyConfig | ConfigError:
    try:
        return load_config(path)
    except ConfigError as error:
        return error


@EXAMPLES
@given(data=STUDY)
def test_a_study_file_is_refused_by_field_or_searched_as_written(data: dict[str, Any]) -> None:
    with study_file(data) as path:
        config = loaded(path)
    if isinstance(config, ConfigError):
        assert {top_key(f) for f in refused_fields(config)} <= {*data, "(top level)"}, config
        assert config.hint
        return
    event("accepted")
    assert set(data) <= set(StudyConfig.model_fields)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, dist in config.distributions().items():
            check_unchanged(config.search_space[name], dist)


@EXAMPLES
@given(data=STUDY)
def test_hpo_run_of_a_refused_file_exits_2_and_leaves_nothing(data: dict[str, Any]) -> None:
    with study_file(data) as path:
        if not isinstance(loaded(path), ConfigError):
            return  # a valid study would run: the other property covers it
        before = snapshot(path.parent)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(["hpo", "run", str(path)])
        assert status == 2
        lines = err.getvalue().splitlines()
        assert lines[0].startswith(f"error: invalid configuration in {path}"), lines
        assert lines[-1].startswith("hint: "), lines
        assert snapshot(path.parent) == before
