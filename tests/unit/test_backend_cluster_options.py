"""ClusterOptions, alike on every backend: checked once, before any cluster starts; a wrong
name is an error listing the valid ones, a wrong value one naming it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from batchml.backends import Backend, ClusterOptions, backend_for
from batchml.config.resources import Resources
from batchml.config.site_lookup import load_site
from batchml.config.site_schema import Network, Site
from batchml.errors import InvalidValue

VALID = "jobs, python, security, log_directory, worker_resources"


def on_loopback(name: str) -> Site:
    """A shipped site with the dask scheduler on loopback (the batch ones name other NICs)."""
    site = load_site(name).site
    return site.model_copy(update={"network": Network(interface="lo")})


BACKENDS: dict[str, Callable[[], Backend]] = {
    name: lambda name=name: backend_for(on_loopback(name))  # type: ignore[misc]
    for name in ("local", "slurm-generic", "lxplus")
}


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.mark.parametrize("site", sorted(BACKENDS))
def test_an_unknown_option_lists_the_valid_ones(site: str) -> None:
    with pytest.raises(InvalidValue, match="unknown cluster option 'n_workers'") as caught:
        BACKENDS[site]().cluster(Resources(cores=1), n_workers=2)
    assert caught.value.hint == f"use one of {VALID}"


@pytest.mark.parametrize("site", sorted(BACKENDS))
@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("jobs", -1, "jobs=-1 is not a number of jobs"),
        ("jobs", "2", "jobs='2' is not a number of jobs"),
        ("security", "yes", "security='yes' is neither True, False nor a Security"),
        ("worker_resources", {"TRIAL": "many"}, "worker_resources=.* is not a mapping"),
        ("python", "", "python='' is not the path of a Python"),
    ],
)
def test_a_wrong_value_is_named(site: str, option: str, value: object, said: str) -> None:
    with pytest.raises(InvalidValue, match=f"cluster option {said}"):
        BACKENDS[site]().cluster(Resources(cores=1), **{option: value})


def test_options_come_as_keywords_or_as_one_object_not_both() -> None:
    with pytest.raises(InvalidValue, match="cluster options given twice"):
        BACKENDS["slurm-generic"]().cluster(Resources(cores=1), ClusterOptions(), jobs=1)


def test_an_options_object_is_what_the_keywords_make() -> None:
    keywords = {"jobs": 0, "security": False, "worker_resources": {"TRIAL": 2}}
    assert ClusterOptions.from_keywords(keywords) == ClusterOptions(**keywords)  # type: ignore[arg-type]
    backend = BACKENDS["slurm-generic"]()
    cluster = backend.cluster(Resources(cores=1), ClusterOptions(**keywords))  # type: ignore[arg-type]
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "--resources TRIAL=2" in script and script.rstrip().endswith("--protocol tcp://")
