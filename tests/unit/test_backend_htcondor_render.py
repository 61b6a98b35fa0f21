"""Golden tests of rendered HTCondor submissions, and the linter that guards them.

Every rendered description is parsed by ``htcondor2.Submit`` and each
ClassAd-valued entry by ``classad2.ExprTree``. Regenerate the golden files
after an intended change with ``BATCHML_UPDATE_GOLDEN=1 pytest THIS_FILE``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import classad2
import htcondor2
import pytest

from batchml.backends.base import JobSpec, RenderedJob, SchedulerError
from batchml.backends.htcondor import HTCondorBackend
from batchml.backends.htcondor.backend import ids_constraint
from batchml.backends.htcondor.lint import parse_submit
from batchml.config.resources import Resources
from batchml.config.site_lookup import load_site
from batchml.config.site_schema import (
    Container,
    Environment,
    HTCondorSettings,
    JobDefaults,
    Network,
    Site,
)
from batchml.config.submit_language import is_classad_valued
from batchml.errors import InvalidValue
from tests.unit.tls_files import security_in_files

GOLDEN = Path(__file__).parent.parent / "golden" / "htcondor"
WORKDIR = Path("/eos/user/a/alice/batchml/jobs/train-1")


def other_site() -> Site:
    """Not lxplus: MaxRuntime instead of flavours, docker, accounting group, no credential."""
    return Site(
        name="test-htcondor",
        scheduler="htcondor",
        defaults=JobDefaults(cores=2, memory="4GB", gpus=1, gpu_names=("A100", "H100")),
        htcondor=HTCondorSettings(
            accounting_group="group_ml.alice",
            send_credential="never",
            extra_attributes={"MY.Project": '"ml"'},
        ),
        container=Container(image="docker://python:3.13", runtime="docker"),
        environment=Environment(venv="~/venvs/ml"),
    )


CASES = {
    "lxplus-train": lambda: (
        load_site("lxplus").site,
        {"gpus": 2, "walltime": "90m"},
        None,
    ),
    "lxplus-array": lambda: (
        load_site("lxplus").site,
        {"gpus": 0, "walltime": "10m"},
        tuple(f"config-{i}.yaml" for i in range(3)),
    ),
    "test-site-train": lambda: (other_site(), {}, None),
}


def render_case(name: str) -> RenderedJob:
    site, overrides, items = CASES[name]()
    job = JobSpec(
        name="train $(whoami); 'x'",
        command=("python", "train.py", "--out", "/eos/user/a/alice/out"),
        resources=Resources.from_site(site, **overrides),
        workdir=WORKDIR,
        array_items=items,
        cwd=Path("/afs/cern.ch/user/a/alice/my analysis"),  # where `batchml submit` ran
    )
    return HTCondorBackend(site).render(job)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_files_match_golden(name: str) -> None:
    rendered = render_case(name)
    for file_name, text in rendered.files.items():
        golden = GOLDEN / name / file_name
        if os.environ.get("BATCHML_UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
        assert text == golden.read_text(), f"{golden} differs: BATCHML_UPDATE_GOLDEN=1 to accept"


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_description_parses(name: str) -> None:
    rendered = render_case(name)
    text = rendered.files[rendered.submit_file]
    description = htcondor2.Submit(text)
    classad_keys = [key for key in description.keys() if is_classad_valued(key)]  # noqa: SIM118
    assert classad_keys
    for key in classad_keys:
        classad2.ExprTree(description.expand(key))
    parse_submit(text, name)


def test_lxplus_description_carries_the_lxplus_conventions() -> None:
    description = htcondor2.Submit(render_case("lxplus-train").files["job.sub"])
    assert description["MY.JobFlavour"] == '"longlunch"'
    assert description["MY.WantOS"] == '"el9"'
    assert description["MY.SendCredential"] == "true"  # krb5 and a workdir on EOS
    assert description["request_gpus"] == "2"
    assert description["should_transfer_files"] == "YES"  # spool
    assert "CUDACapability" in description["requirements"]


def test_user_dollar_never_reaches_the_macro_expander() -> None:
    description = htcondor2.Submit(render_case("test-site-train").files["job.sub"])
    assert description.expand("batch_name") == "train $(whoami); 'x'"


def test_unquoted_string_value_is_a_lint_error() -> None:
    # Site files refuse it (test_site_attacks); the lint catches it where it slips through.
    unchecked = HTCondorSettings.model_construct(extra_attributes={"MY.WantOS": "el9"})
    site = other_site().model_copy(update={"htcondor": unchecked})
    job = JobSpec(name="t", command=("true",), resources=Resources.from_site(site), workdir=WORKDIR)
    backend = HTCondorBackend(site)
    with pytest.raises(SchedulerError, match=r'MY.WantOS = el9 .* write MY.WantOS = "el9"'):
        backend.lint(backend.render(job), job)


@pytest.mark.parametrize(
    "text",
    ["executable = \nfoo bar\n", "executable = /bin/true\nrequirements = (1 +\nqueue\n"],
)
def test_unparsable_description_is_a_lint_error(text: str) -> None:
    with pytest.raises(SchedulerError, match="bad-input"):
        parse_submit(text, "bad-input")


def test_workdir_with_a_line_break_is_refused() -> None:
    site = other_site()
    job = JobSpec(
        name="t",
        command=("true",),
        resources=Resources.from_site(site),
        workdir=Path("/tmp/a\nqueue 1000"),
    )
    with pytest.raises(InvalidValue, match="line break"):
        HTCondorBackend(site).render(job)


def test_credential_only_for_afs_or_eos() -> None:
    lxplus = load_site("lxplus").site
    local_paths = lxplus.paths.model_copy(update={"shared_dir": None, "registry_root": "/data/r"})
    backend = HTCondorBackend(lxplus.model_copy(update={"paths": local_paths}))
    assert not backend.needs_credential(["/tmp/work"])
    assert backend.needs_credential(["/afs/cern.ch/user/a/alice/work"])
    assert not backend.needs_credential(["/eosx/data"])


def test_a_job_submitted_from_afs_gets_the_credential() -> None:
    lxplus = load_site("lxplus").site
    local_paths = lxplus.paths.model_copy(update={"shared_dir": None, "registry_root": "/data/r"})
    backend = HTCondorBackend(lxplus.model_copy(update={"paths": local_paths}))
    resources = Resources.from_site(backend.site)
    for cwd, sent in ((None, False), (Path("/tmp/a"), False), (Path("/afs/cern.ch/x"), True)):
        job = JobSpec(name="t", command=("python", "train.py"), resources=resources,
                      workdir=Path("/tmp/jobs/t"), cwd=cwd)  # fmt: skip
        assert ("MY.SendCredential" in backend.render(job).files["job.sub"]) is sent, cwd


def test_status_constraint_is_one_clause_per_cluster() -> None:
    assert ids_constraint(["12.0", "12.3", "14.0"]) == (
        "(ClusterId == 12 && member(ProcId, {0, 3})) || (ClusterId == 14 && member(ProcId, {0}))"
    )


def test_worker_options_come_from_the_site(tmp_path: Path) -> None:
    lxplus = load_site("lxplus").site
    # lxplus's network on loopback, its range moved where no other test's scheduler sits
    moved = {"interface": "lo", "scheduler_port": 0, "worker_ports": (40200, 40300)}
    network = lxplus.network.model_copy(update=moved)
    site = lxplus.model_copy(update={"network": network})
    cluster = HTCondorBackend(site).cluster(
        Resources.from_site(site), security=security_in_files(tmp_path)
    )
    try:
        worker = parse_submit(cluster.job_script(), "worker", executable="/bin/sh")
        scheduler_port = int(cluster.scheduler_address.rsplit(":", 1)[1])
    finally:
        cluster.close()
    preload = "batchml._compat.tornado_tls"  # the TLS fix, in worker and nanny
    options = [
        f"--preload {preload} --preload-nanny {preload}",
        "--no-dashboard --dashboard-address 127.0.0.1:0",  # the worker's pages: for nobody else
        "--resources GPU=1",
        "--worker-port 40200:40300 --nanny-port 40200:40300",
    ]
    arguments = worker.expand("Arguments")
    assert all(option in arguments for option in options), arguments
    assert 40200 <= scheduler_port <= 40300  # the scheduler too listens where the site opens


def test_lxplus_marks_its_dask_worker_jobs_and_only_them(tmp_path: Path) -> None:
    """CERN's own wrapper (dask-lxplus) sets MY.IsDaskWorker on every worker job it submits."""
    lxplus = load_site("lxplus").site
    site = lxplus.model_copy(update={"network": Network(interface="lo", scheduler_port=0)})
    backend = HTCondorBackend(site)
    cluster = backend.cluster(Resources.from_site(site), security=security_in_files(tmp_path))
    try:
        worker = parse_submit(cluster.job_script(), "worker", executable="/bin/sh")
    finally:
        cluster.close()
    assert worker.expand("MY.IsDaskWorker") == "true"
    job = JobSpec(name="t", command=("true",), resources=Resources.from_site(site),
                  workdir=Path("/tmp/jobs/t"))  # fmt: skip
    plain = htcondor2.Submit(backend.render(job).files["job.sub"])
    assert "MY.IsDaskWorker" not in plain


def test_a_taken_scheduler_port_is_said_at_once() -> None:
    lxplus = load_site("lxplus").site
    assert lxplus.network.scheduler_port == 8786  # what CERN's batch service opens for dask
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        site = lxplus.model_copy(update={"network": Network(interface="lo", scheduler_port=port)})
        with pytest.raises(SchedulerError, match=f"port {port} .* is taken on this host") as caught:
            HTCondorBackend(site).cluster(Resources.from_site(site))
    assert "another node" in (caught.value.hint or "")
