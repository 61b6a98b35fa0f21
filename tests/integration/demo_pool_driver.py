"""Runs inside the HTCondor pool (see tests/integration/pool.py): `batchml demo --site FILE`.

The demo's command line as a user types it, with a site file whose worker jobs
are this pool's; the report holds its exit status, its output, and the worker
logs in which a job's dask worker registered with the demo's scheduler.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def site_file(run_dir: Path) -> Path:
    """Worker jobs that import the checkout's batchml and log to RUN_DIR/logs."""
    path = run_dir / "demo-htcondor.yaml"
    path.write_text(
        "scheduler: htcondor\n"
        "defaults: {cores: 1, memory: 2GB, disk: 1GB, walltime: 20m}\n"
        "htcondor: {job_flavour: espresso}\n"
        "network: {interface: lo, worker_ports: 40000-40100}\n"
        f"environment: {{variables: {{PYTHONPATH: {run_dir / 'src'}}}}}\n"
        f"paths: {{log_dir: {run_dir / 'logs'}, shared_dir: {run_dir.parent}}}\n"
    )
    return path


def main(run_dir: Path) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "batchml.cli", "demo", "--site", str(site_file(run_dir)),
         "--workdir", str(run_dir / "w"), "--events", "20000", "--trials", "4"],
        capture_output=True, text=True, timeout=200, check=False,
        env={**os.environ, "PYTHONPATH": str(run_dir / "src")},
    )  # fmt: skip
    logs = sorted((run_dir / "logs").glob("*.err"))
    report = {
        "returncode": demo.returncode,
        "stdout": demo.stdout,
        "stderr": demo.stderr,
        "logs": [p.name for p in logs],
        "registered": [p.name for p in logs if "Registered to" in p.read_text()],
    }
    (run_dir / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
