"""The wheel carries site configs and templates, and they are found from an installed copy."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

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
