"""The docs cannot rot: every `batchml ...` line of the READMEs' sh blocks is checked.

Each command is parsed by the real parser (as ``batchml.cli.main`` does: the
words after ``--`` go to the job, not to argparse). Those that need no batch
system, service, credential or placeholder file are also run in a child
process and must exit 0; the others are listed, with the reason, so none is
dropped silently.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from batchml.cli import build_parser
from batchml.config.site_lookup import load_site
from batchml.hpo.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", ROOT / "examples" / "analysis" / "README.md")
SITE_EXAMPLE = ROOT / "examples" / "site-admin" / "gpu-partition.yaml"
STUDY_EXAMPLE = ROOT / "examples" / "analysis" / "study.yaml"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)


def doc_commands(path: Path) -> list[list[str]]:
    """The words after 'batchml' of each batchml command in the file's ```sh blocks."""
    commands = []
    for block in SH_BLOCK.findall(path.read_text()):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0] == "batchml":
                    commands.append(words[1:])
    return commands


COMMANDS = [
    pytest.param(words, id=f"{path.relative_to(ROOT)}: batchml {shlex.join(words)}")
    for path in DOCS
    for words in doc_commands(path)
]


def split_passthrough(words: list[str]) -> tuple[list[str], list[str]]:
    """As batchml.cli.main: argparse gets the words before the first '--'."""
    split = words.index("--") if "--" in words else len(words)
    return words[:split], words[split + 1 :]


def why_not_run(words: list[str]) -> str | None:
    """None for a command that is safe to run here, else why it only gets the parse check."""
    options, _ = split_passthrough(words)
    if options[:2] in (["site", "list"], ["site", "show"]):
        return None
    if options[:2] == ["site", "validate"]:
        missing = [f for f in options[2:] if not (ROOT / f).is_file()]
        return f"placeholder file(s) {missing}" if missing else None
    if options[:1] == ["submit"] and "--dry-run" in options:
        return None
    return "needs a batch system, a study, a registry, data or a network"


def run_batchml(words: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The command in a child process at the repository root, with no user or admin sites."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHML_")}
    admin = tmp_path / "admin-sites"
    admin.mkdir(exist_ok=True)
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        BATCHML_ADMIN_SITES_DIR=str(admin),
        NO_COLOR="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "batchml.cli", *words],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_readme_shows_the_commands_the_tests_rely_on() -> None:
    lines = {shlex.join(words) for path in DOCS for words in doc_commands(path)}
    for expected in (
        "site list",
        "site show lxplus",
        "site validate examples/site-admin/gpu-partition.yaml",
        "hpo run study.yaml",
        "registry list",
        "package build example-mlp@production -o package",
    ):
        assert expected in lines
    assert any(p.values[0][0] == "submit" for p in RUNNABLE), "no --dry-run submit is run"
    assert len(RUNNABLE) >= 5


@pytest.mark.parametrize("words", COMMANDS)
def test_every_documented_command_parses(words: list[str]) -> None:
    options, passthrough = split_passthrough(words)
    try:
        args = build_parser().parse_args(options)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"batchml {shlex.join(words)}: refused by the parser ({exc})")
    assert callable(args.handler)
    if options[:1] == ["submit"]:
        assert passthrough, "a submit line needs '-- PROGRAM'"


# The others (a batch system, a study, a registry or data needed) are parse-checked above.
RUNNABLE = [param for param in COMMANDS if not why_not_run(param.values[0])]


@pytest.mark.parametrize("words", RUNNABLE)
def test_documented_commands_that_need_no_service_run(words: list[str], tmp_path: Path) -> None:
    result = run_batchml(words, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_site_admin_example_validates() -> None:
    resolved = load_site(SITE_EXAMPLE)
    assert resolved.site.name == "gpu-partition"
    assert resolved.site.scheduler == "slurm"
    assert resolved.site.slurm is not None and resolved.site.slurm.gpu_type == "a100"


def test_the_analysis_example_study_loads() -> None:
    config = load_config(STUDY_EXAMPLE)
    assert config.objective == "train.py:objective"
    assert (STUDY_EXAMPLE.parent / "train.py").is_file()
    assert set(config.distributions()) == {
        "learning_rate",
        "width",
        "depth",
        "dropout",
        "batch_size",
    }


# Import paths users had before the structural step (issue 18), beside those the docs show.
KEPT_IMPORTS = [
    ("batchml.trial_report", "report"),
    ("batchml.inference", "BatchedSession"),
    ("batchml.hpo", "run_study"),
    ("batchml.data", "RootDataset"),
    ("batchml.registry", "Registry"),
    ("batchml.triton_session", "TritonSession"),
    ("batchml.data.synthetic", "write_sample"),
]
IMPORT_LINE = re.compile(r"\bfrom (batchml[\w.]*) import ([\w, ]+)")
HPO_CALL = re.compile(r"\bhpo\.(\w+)\(")


def documented_imports() -> list[tuple[str, str, str]]:
    """(module, name, where) for each ``from batchml... import name`` in the READMEs and
    examples, and each ``hpo.name(`` call of the README (it imports ``hpo`` itself)."""
    found = []
    for path in (*DOCS, *sorted((ROOT / "examples").rglob("*.py"))):
        text = path.read_text()
        where = str(path.relative_to(ROOT))
        for module, names in IMPORT_LINE.findall(text):
            found += [(module, name.strip(), where) for name in names.split(",") if name.strip()]
        found += [("batchml.hpo", name, where) for name in HPO_CALL.findall(text)]
    return sorted(set(found))


@pytest.mark.parametrize(
    ("module", "name", "where"),
    [*documented_imports(), *((m, n, "kept import path") for m, n in KEPT_IMPORTS)],
)
def test_every_import_path_users_rely_on_works(module: str, name: str, where: str) -> None:
    """It resolves, and a public module lists the name in ``__all__`` (the command line's
    modules are not an API; ``from batchml import hpo`` names a subpackage)."""
    if module == "batchml" and importlib.util.find_spec(f"batchml.{name}"):
        return  # a subpackage
    imported = importlib.import_module(module)
    assert hasattr(imported, name), f"{where}: {module} has no {name}"
    if not module.startswith("batchml.cli"):
        assert name in getattr(imported, "__all__", ()), f"{where}: {module}.__all__ lacks {name}"
