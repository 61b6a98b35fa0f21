"""The `batchml` command as a user runs it: exit codes, messages, plain output when piped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchml import __version__
from batchml.cli import build_parser, main


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command in a child process, output piped (so: not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "batchml.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_version_and_help() -> None:
    assert run_cli("--version").stdout.strip() == f"batchml {__version__}"
    helptext = run_cli("--help").stdout
    for group in ("site", "demo"):
        assert group in helptext


def test_site_list_shows_the_three_shipped_sites() -> None:
    result = run_cli("site", "list")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:4]}
    assert rows == {"local": "local", "lxplus": "htcondor", "slurm-generic": "slurm"}
    assert "\x1b[" not in result.stdout  # piped output carries no colour codes


def test_site_show_gives_value_and_origin_of_every_field(tmp_path: Path) -> None:
    user = tmp_path / "batchml" / "sites"
    user.mkdir(parents=True)
    (user / "mine.yaml").write_text("extends: lxplus\ndefaults: {gpus: 4}\n")
    result = run_cli(
        "site", "show", "mine", "--format", "json", env={"XDG_CONFIG_HOME": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["site"]["defaults"]["gpus"] == 4
    assert shown["origins"]["defaults.gpus"] == str(user / "mine.yaml")
    assert shown["origins"]["defaults.cores"].endswith("site_configs/lxplus.yaml")
    assert shown["origins"]["defaults.gpu_memory"] == "built-in default"


def test_validate_bad_file_exits_2_with_one_message_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scheduler: htcondor\nhtcondor: {job_flavour: weekend}\n")
    result = run_cli("site", "validate", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error: invalid configuration in {bad}" in result.stderr
    assert "htcondor.job_flavour: 'weekend' is not an lxplus job flavour" in result.stderr
    assert "fix: use one of espresso" in result.stderr


def test_validate_reports_every_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("scheduler: local\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("scheduler: local\ndefaults: {memory: 4}\n")
    result = run_cli("site", "validate", str(bad), str(good))
    assert result.returncode == 2
    assert f"ok {good}" in result.stdout and str(bad) in result.stderr


def test_unknown_site_exits_2_with_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-color", "site", "show", "slurm-generik"]) == 2
    err = capsys.readouterr().err
    assert "error: no site named 'slurm-generik'" in err
    assert "hint: did you mean 'slurm-generic'?" in err


def test_usage_error_exits_2() -> None:
    result = run_cli("site", "frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_parser_is_public_and_complete() -> None:
    parser = build_parser()
    args = parser.parse_args(["site", "show", "lxplus", "--format", "json"])
    assert (args.name, args.format) == ("lxplus", "json")


def test_importing_batchml_does_not_import_torch_or_dask() -> None:
    code = (
        "import sys, batchml, batchml.cli, batchml.config.site_lookup; "
        "print(sorted(m for m in ('torch', 'dask', 'uproot') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_site_show_says_how_slurm_is_reached() -> None:
    result = run_cli("site", "show", "slurm-generic")
    assert (
        "Slurm access: command-line tools (sbatch --parsable, squeue --json, scancel)"
        in result.stdout
    )
    assert "Slurm access" not in run_cli("site", "show", "lxplus").stdout
