"""The wheel carries site configs, templates and py.typed, and they are found from an installed
copy; every dependency is bounded, and the venv holds the releases constraints.txt pins."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_site_configs_and_finds_them_outside_the_checkout(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("batchml-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site-packages")
    assert "batchml/py.typed" in names  # type checkers read the hints of an installed batchml
    for site in ("local", "lxplus", "slurm-generic"):
        assert f"batchml/site_configs/{site}.yaml" in names
    for template in ("common/job.sh.j2", "slurm/train.sbatch.j2", "htcondor/train.sub.j2"):
        assert f"batchml/submit_templates/{template}" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    code = (
        "import batchml.config.site_lookup as s, batchml.config.templates as t; "
        "print(s.SHIPPED_DIR); print(len(s.list_sites())); print(','.join(t.available('slurm')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={
            "PYTHONPATH": str(tmp_path / "site-packages"),
            "HOME": str(tmp_path),
            "PATH": "/usr/bin:/bin",
        },
    ).stdout.split()
    assert out[0].startswith(str(tmp_path / "site-packages")) and out[1] == "3"
    assert out[2] == "train"  # templates found in the installed copy


def _requirements() -> list[Requirement]:
    """install_requires and every extra of setup.cfg (an extra naming batchml itself aside)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    for extra in config["options.extras_require"].values():
        lines += extra.splitlines()
    found = [Requirement(line) for line in lines if line.strip()]
    return [r for r in found if canonicalize_name(r.name) != "batchml"]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_every_dependency_is_bounded_below_its_next_major() -> None:
    unbounded = [str(r) for r in _requirements() if not any(s.operator == "<" for s in r.specifier)]
    assert not unbounded, f"setup.cfg: give these an upper bound (<NEXT_MAJOR): {unbounded}"


def test_each_pinned_release_lies_inside_its_range_in_setup_cfg() -> None:
    pins = _pins()
    outside = [
        f"{r} vs {pins[canonicalize_name(r.name)]}"
        for r in _requirements()
        if canonicalize_name(r.name) in pins
        and not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)
    ]
    assert not outside, f"constraints.txt pins a release setup.cfg excludes: {outside}"


def test_the_venv_holds_the_pinned_releases() -> None:
    """What `make venv` installs with `-c constraints.txt`: the tests ran against these."""
    installed_requirements = []
    for r in _requirements():
        try:
            metadata.version(r.name)
        except metadata.PackageNotFoundError:
            continue  # an extra this machine does not install (gpu, slurm)
        installed_requirements.append(canonicalize_name(r.name))
    pins = _pins()
    unpinned = sorted(set(installed_requirements) - set(pins))
    assert not unpinned, f"constraints.txt: pin the tested release of {unpinned}"
    differ = {
        name: metadata.version(name)
        for name, pin in pins.items()
        if Version(metadata.version(name)).public != str(pin)
    }
    assert not differ, f"installed {differ}, constraints.txt pins others: make clean venv"
