"""Rendered descriptions through the pool's real condor_submit -dry-run: one job, values intact.

The unit tests parse descriptions with the htcondor2 bindings; here the
submit language is read by the condor_submit of the test pool, which prints
the job ads it would queue. For random job names, folders and site values,
either batchml refuses the value, or exactly one job is queued, running the
job script in its folder, with the name and attribute as written.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import classad2
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from batchml.backends.base import JobSpec
from batchml.backends.htcondor import HTCondorBackend
from batchml.config.resources import Resources
from batchml.config.site_schema import Environment, HTCondorSettings, Site
from batchml.config.templates import classad_string
from batchml.errors import InvalidValue
from tests.unit.tls_files import security_in_files

pytestmark = pytest.mark.htcondor

SYNTAX = [*"$()\\\"'`;#=:{}[] ~.,-_|&<>*?!%@+\n\r\t\x1b\x85\u2028", "$$", "$(", "$(DOLLAR)"]
TEXT = st.lists(
    st.one_of(st.sampled_from(SYNTAX), st.characters(codec="utf-8", exclude_characters="\x00")),
    max_size=12,
).map("".join)
# Printable syntax only, so that most examples get as far as condor_submit.
PRINTABLE = st.lists(
    st.sampled_from([*"$()\"'`;#=:{}[] ~.,-_|&<>*?!%@+aZ9", "$$", "$(", "$(DOLLAR)", "é"]),
    max_size=12,
).map("".join)


@pytest.fixture(scope="module")
def shared(htcondor_env: dict[str, str]) -> Iterator[Path]:
    """A folder the pool's condor_submit (in its chroot, as the pool user) can read."""
    folder = Path(tempfile.mkdtemp(prefix="dry-run-", dir=htcondor_env["BATCHML_HTCONDOR_SHARED"]))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def dry_run(htcondor_env: dict[str, str], folder: Path, submit_file: str) -> list[dict[str, str]]:
    """The job ads condor_submit -dry-run prints: the first in full, then what changes."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755)  # the pool user reads them
    tool = Path(htcondor_env["BATCHML_HTCONDOR_BIN"]) / "condor_submit"
    done = subprocess.run(
        [str(tool), "-dry-run", "-", submit_file], cwd=folder,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ads: list[dict[str, str]] = [{}]
    for line in done.stdout.splitlines()[1:]:
        if line == ".":
            ads.append(dict(ads[-1]))
        elif "=" in line and not line.endswith("dry-run to cluster 1."):
            key, _, value = line.partition("=")
            ads[-1][key] = value
    return ads[:-1]


def value(ad: dict[str, str], key: str) -> object:
    """An attribute of a printed ad, which is in the old ClassAd syntax (only \\" is an escape)."""
    text = ad[key]
    if len(text) > 1 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return classad2.ExprTree(text).eval()


def writable_label(name: str) -> bool:
    """Whether a job name reaches JobBatchName unchanged (else it is folded for display)."""
    lower = name.lower()
    return (
        name == " ".join(name.split())
        and name.isprintable()
        and not name.endswith("\\")
        and "$$(" not in name
        and "$(dollar" not in lower
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=TEXT, leaf=st.one_of(PRINTABLE, TEXT), note=st.one_of(PRINTABLE, TEXT))
def test_random_values_give_one_job_with_the_values_intact(
    htcondor_env: dict[str, str], shared: Path, name: str, leaf: str, note: str
) -> None:
    leaf = leaf.replace("/", "_")
    if leaf in ("", ".", ".."):
        leaf = f"job{leaf}"
    try:
        settings_ = HTCondorSettings(
            send_credential="never", extra_attributes={"MY.Note": classad_string(note)}
        )
        site = Site(name="t", scheduler="htcondor", htcondor=settings_)
        parent = Path(tempfile.mkdtemp(dir=shared))
        parent.chmod(0o755)
        folder = parent / leaf
        job = JobSpec(name=name or "x", command=("true",), resources=Resources(), workdir=folder)
        backend = HTCondorBackend(site)
        rendered = backend.render(job)
    except (ValidationError, InvalidValue):
        event("refused")
        return  # refused, with the value named (the unit tests check the wording)
    event("submitted to condor_submit -dry-run")
    backend.lint(rendered, job)
    folder.mkdir()
    for file_name, text in rendered.files.items():
        (folder / file_name).write_text(text)
    (ad,) = dry_run(htcondor_env, folder, "job.sub")
    assert value(ad, "Cmd") == str(folder / "job.sh")
    assert value(ad, "Iwd") == str(folder)
    assert value(ad, "Note") == note
    if writable_label(job.name):
        assert value(ad, "JobBatchName") == job.name
    else:
        assert "\n" not in str(value(ad, "JobBatchName"))


def test_worker_description_keeps_its_command_and_log_folder(
    htcondor_env: dict[str, str], shared: Path
) -> None:
    folder = Path(tempfile.mkdtemp(dir=shared))
    folder.chmod(0o755)
    security = security_in_files(folder)
    site = Site(
        name="t",
        scheduler="htcondor",
        htcondor=HTCondorSettings(send_credential="never"),
        environment=Environment(variables={"WHO": "$(whoami) $$ $x"}),
    )
    cluster = HTCondorBackend(site).cluster(
        Resources(), security=security, log_directory=str(folder / "logs$x")
    )
    try:
        (folder / "worker.sub").write_text(cluster.job_script())
    finally:
        cluster.close()
    (ad,) = dry_run(htcondor_env, folder, "worker.sub")
    assert value(ad, "Cmd") == "/bin/sh"
    # condor's own argument quoting separates the words; each reads as written
    assert "$(whoami)' '$$' '$x" in str(value(ad, "Arguments"))
    assert value(ad, "Out") == f"{folder}/logs$x/worker-1.0.out"
