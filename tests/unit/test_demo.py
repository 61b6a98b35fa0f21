"""`batchml demo` as the README runs it, scaled down: every stage runs and reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_every_stage_on_the_embedded_default(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchml.cli",
            "demo",
            "--workdir",
            str(tmp_path / "w"),
            "--events",
            "20000",
            "--files",
            "2",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},  # no user site configs
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "site local (local)" in out
    assert "events read: 10000 signal, 10000 background" in out
    ranking = [line.split()[1] for line in out.splitlines() if line.startswith("│ ")]
    assert ranking[0] in {"dr_bb", "ht", "pt_bb", "jet1_pt", "jet2_pt"}, (
        out
    )  # a physics feature leads
    assert ranking.index("mt_w") > 10  # the W transverse mass is the same in both classes
    assert len(list((tmp_path / "w" / "data").glob("*.root"))) == 4
    assert "Traceback" not in result.stderr
