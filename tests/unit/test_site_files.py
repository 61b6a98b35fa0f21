"""Site files: look-up order, extends and provenance, and one precise error per bad config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchml.config.site_lookup import BUILTIN, SHIPPED_DIR, find_site_file, list_sites, load_site
from batchml.errors import ConfigError, SiteNotFoundError


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An empty user folder and site-admin folder in front of the shipped configs."""
    user = tmp_path / "config" / "batchml" / "sites"
    admin = tmp_path / "etc-sites"
    user.mkdir(parents=True)
    admin.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("BATCHML_ADMIN_SITES_DIR", str(admin))
    monkeypatch.delenv("BATCHML_SITE", raising=False)
    return user, admin


def test_shipped_sites_are_valid_and_listed(dirs: tuple[Path, Path]) -> None:
    names = {name: label.label for name, label, _ in list_sites()}
    assert names == {"local": "shipped", "lxplus": "shipped", "slurm-generic": "shipped"}
    assert load_site("lxplus").site.htcondor.job_flavour == "workday"
    assert load_site("slurm-generic").site.slurm.memory_directive == "mem"


def test_lookup_order_user_before_admin_before_shipped(dirs: tuple[Path, Path]) -> None:
    user, admin = dirs
    (admin / "lxplus.yaml").write_text("scheduler: htcondor\ndescription: admin copy\n")
    assert load_site("lxplus").site.description == "admin copy"
    (user / "lxplus.yaml").write_text("scheduler: htcondor\ndescription: user copy\n")
    assert load_site("lxplus").site.description == "user copy"
    assert find_site_file("local") == SHIPPED_DIR / "local.yaml"


def test_default_site_is_env_then_local(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_site().site.name == "local"
    monkeypatch.setenv("BATCHML_SITE", "slurm-generic")
    assert load_site().site.scheduler == "slurm"


def test_explicit_path_wins(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("scheduler: slurm\nslurm: {partition: short}\n")
    resolved = load_site(path)
    assert (resolved.site.name, resolved.site.slurm.partition) == ("mine", "short")


def test_extends_merges_and_records_origins(dirs: tuple[Path, Path]) -> None:
    user, _ = dirs
    mine = user / "lxplus.yaml"
    mine.write_text("extends: lxplus\ndefaults: {gpus: 2}\nenvironment: {variables: {A: '1'}}\n")
    resolved = load_site("lxplus")
    site = resolved.site
    assert site.defaults.gpus == 2 and site.defaults.cores == 4  # 4 from the shipped file
    assert site.environment.variables == {"PYTHONNOUSERSITE": "1", "A": "1"}
    assert resolved.files == (mine, SHIPPED_DIR / "lxplus.yaml")
    assert resolved.origin_of("defaults.gpus") == str(mine)
    assert resolved.origin_of("defaults.cores") == str(SHIPPED_DIR / "lxplus.yaml")
    assert resolved.origin_of("defaults.gpu_memory") == BUILTIN


def test_unknown_site_suggests_the_close_name(dirs: tuple[Path, Path]) -> None:
    with pytest.raises(SiteNotFoundError) as info:
        load_site("lxplux")
    assert "'lxplus'" in info.value.hint and "lxplux" in info.value.message


@pytest.mark.parametrize("name", ["lx; rm -rf ~", "lxplus\n", "../lxplus", "a/b", ".hidden"])
def test_site_name_is_matched_whole(dirs: tuple[Path, Path], name: str) -> None:
    with pytest.raises(SiteNotFoundError, match="is not a site name"):
        find_site_file(name)


# Each bad config: its text, the field path the error must name, words the fix must hold.
BAD_CONFIGS = [
    ("unknown-key", "scheduler: local\nwalltime: 2h\n", "walltime", "valid keys here"),
    (
        "typo-key-suggests",
        "scheduler: local\ndefaults: {wallime: 2h}\n",
        "defaults.wallime",
        "did you mean 'walltime'",
    ),
    ("missing-scheduler", "description: x\n", "scheduler", "add 'scheduler: htcondor'"),
    ("bad-scheduler", "scheduler: pbs\n", "scheduler", "use one of 'htcondor', 'slurm' or 'local'"),
    (
        "walltime-not-duration",
        "scheduler: local\ndefaults: {walltime: soon}\n",
        "defaults.walltime",
        "'2h'",
    ),
    (
        "walltime-bare-number",
        "scheduler: local\ndefaults: {walltime: 120}\n",
        "defaults.walltime",
        "'30m'",
    ),
    (
        "memory-without-unit",
        "scheduler: local\ndefaults: {memory: 4000}\n",
        "defaults.memory",
        "'4GB'",
    ),
    (
        "cores-wrong-type",
        "scheduler: local\ndefaults: {cores: four}\n",
        "defaults.cores",
        "whole number",
    ),
    ("cores-zero", "scheduler: local\ndefaults: {cores: 0}\n", "defaults.cores", ">= 1"),
    ("negative-gpus", "scheduler: local\ndefaults: {gpus: -1}\n", "defaults.gpus", ">= 0"),
    (
        "unknown-flavour",
        "scheduler: htcondor\nhtcondor: {job_flavour: weekend}\n",
        "htcondor.job_flavour",
        "espresso",
    ),
    (
        "flavour-too-short",
        "scheduler: htcondor\ndefaults: {walltime: 2h}\nhtcondor: {job_flavour: espresso}\n",
        "htcondor",
        "use job_flavour 'longlunch'",
    ),
    (
        "section-for-other-scheduler",
        "scheduler: slurm\nhtcondor: {spool: true}\n",
        "htcondor",
        "set scheduler: htcondor",
    ),
    (
        "bad-port-range",
        "scheduler: local\nnetwork: {worker_ports: 40100-40000}\n",
        "network.worker_ports",
        "lower port first",
    ),
    (
        "port-range-text",
        "scheduler: local\nnetwork: {worker_ports: many}\n",
        "network.worker_ports",
        "'40000-40100'",
    ),
    (
        "privileged-port",
        "scheduler: local\nnetwork: {dashboard_port: 80}\n",
        "network.dashboard_port",
        ">= 1024",
    ),
    (
        "dashboard-port-without-dashboard",
        "scheduler: local\nnetwork: {dashboard_port: 8787}\n",
        "network.dashboard_port",
        "dashboard: true",
    ),
    (
        "two-environments",
        "scheduler: local\nenvironment: {venv: /v, conda: ml}\n",
        "environment.conda",
        "only one of",
    ),
    (
        "bad-redirector",
        "scheduler: local\nxrootd: {redirector: 'http://eos'}\n",
        "xrootd.redirector",
        "root://",
    ),
    ("bad-auth", "scheduler: local\nxrootd: {auth: kerberos}\n", "xrootd.auth", "'krb5'"),
    (
        "bad-sbatch-directive",
        "scheduler: slurm\nslurm: {extra_directives: ['-p gpu']}\n",
        "slurm.extra_directives[0]",
        "one option per list item",
    ),
    (
        "bad-classad-name",
        "scheduler: htcondor\nhtcondor: {extra_attributes: {'My Project': x}}\n",
        "htcondor.extra_attributes.My Project (the key)",
        "MY.Project",
    ),
    (
        "spool-not-bool",
        "scheduler: htcondor\nhtcondor: {spool: maybe}\n",
        "htcondor.spool",
        "true or false",
    ),
    ("defaults-not-mapping", "scheduler: local\ndefaults: [1, 2]\n", "defaults", "mapping"),
    ("name-key", "name: other\nscheduler: local\n", "name", "remove 'name'"),
    (
        "yaml-syntax",
        "scheduler: local\ndefaults: {cores: 2\n",
        "(line 3, column 1)",
        "fix the syntax",
    ),
    (
        "duplicate-key",
        "scheduler: local\nscheduler: slurm\n",
        "(line 2, column 1)",
        "keep only one",
    ),
    ("empty-file", "", "(top level)", "scheduler: local"),
    ("top-level-list", "- scheduler: local\n", "(top level)", "scheduler: local"),
    (
        "extends-unknown",
        "extends: lxplux\nscheduler: htcondor\n",
        "extends",
        "did you mean 'lxplus'",
    ),
]


@pytest.mark.parametrize(
    ("text", "field", "fix"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_names_file_field_and_fix(
    dirs: tuple[Path, Path], tmp_path: Path, text: str, field: str, fix: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_site(path)
    error = info.value
    assert error.source == str(path)
    assert field in [p.field for p in error.problems], str(error)
    problem = next(p for p in error.problems if p.field == field)
    assert fix in problem.fix, str(error)
    assert str(path) in str(error) and field in str(error)


def test_unreadable_file_is_a_config_error(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read") as info:
        load_site(tmp_path / "missing.yaml")
    assert info.value.problems[0].field == "(file)"
    if os.geteuid() != 0:  # root reads anything: only the missing-file case holds there
        locked = tmp_path / "locked.yaml"
        locked.write_text("scheduler: local\n")
        locked.chmod(0)
        with pytest.raises(ConfigError, match="cannot be read"):
            load_site(locked)


def test_extends_loop_is_reported(dirs: tuple[Path, Path]) -> None:
    user, admin = dirs
    (user / "a.yaml").write_text("extends: a\nscheduler: local\n")
    (admin / "a.yaml").write_text("extends: a\nscheduler: local\n")
    with pytest.raises(ConfigError, match="extends"):
        load_site("a")


def test_bad_value_in_a_parent_names_the_parent(dirs: tuple[Path, Path]) -> None:
    user, admin = dirs
    (admin / "base.yaml").write_text("scheduler: local\ndefaults: {memory: lots}\n")
    (user / "child.yaml").write_text("extends: base\ndescription: mine\n")
    with pytest.raises(ConfigError) as info:
        load_site("child")
    assert f"(set in {admin / 'base.yaml'})" in str(info.value)


def test_every_problem_is_reported_at_once(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("scheduler: local\ndefaults: {cores: x, memory: 1, walltime: y}\n")
    with pytest.raises(ConfigError) as info:
        load_site(path)
    assert {p.field for p in info.value.problems} == {
        "defaults.cores",
        "defaults.memory",
        "defaults.walltime",
    }
