"""Hostile site files and job values: refused by name, never an extra submit or shell statement.

Each attack below is a site file someone could hand a colleague. `batchml site
validate` must refuse it (exit 2) naming the file, the field and the fix;
values that slip past the schema (built in code) are caught when rendering or
by the HTCondor lint, which checks the statements of every description.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import htcondor2
import pytest

from batchml.backends import backend_for
from batchml.backends.base import JobSpec, SchedulerError
from batchml.backends.htcondor import HTCondorBackend
from batchml.backends.htcondor.lint import parse_submit
from batchml.cli import main
from batchml.config.resources import Resources
from batchml.config.site_schema import Environment, HTCondorSettings, Site
from batchml.errors import InvalidValue
from tests.unit.tls_files import security_in_files

# (id, site file text, the field path the error must name)
ATTACKS = [
    (
        "attribute-value-adds-statements",
        "scheduler: htcondor\nhtcondor:\n  extra_attributes:\n"
        '    MY.Project: "\\"ml\\"\\nexecutable = /bin/sh\\nqueue 5"\n',
        "htcondor.extra_attributes",
    ),
    (
        "attribute-named-executable",
        "scheduler: htcondor\nhtcondor: {extra_attributes: {executable: '\"/bin/sh\"'}}\n",
        "htcondor.extra_attributes.executable (the key)",
    ),
    (
        "attribute-named-queue",
        "scheduler: htcondor\nhtcondor: {extra_attributes: {queue: '5'}}\n",
        "htcondor.extra_attributes.queue (the key)",
    ),
    (
        "attribute-value-continues-the-line",
        "scheduler: htcondor\nhtcondor: {extra_attributes: {MY.A: '\"x\" \\'}}\n",
        "htcondor.extra_attributes",
    ),
    (
        "attribute-value-match-time-macro",
        "scheduler: htcondor\nhtcondor: {extra_attributes: {MY.A: '\"$$(Memory)\"'}}\n",
        "htcondor.extra_attributes",
    ),
    (
        "attribute-value-bare-word",
        "scheduler: htcondor\nhtcondor: {extra_attributes: {MY.WantOS: el9}}\n",
        "htcondor.extra_attributes",
    ),
    (
        "variable-name-runs-a-command",
        "scheduler: local\nenvironment:\n  variables: {'X=1; touch /tmp/pwned; Y': v}\n",
        "environment.variables['X=1; touch /tmp/pwned; Y'] (the key)",
    ),
    (
        "variable-value-with-line-break",
        'scheduler: htcondor\nenvironment: {variables: {A: "1\\nqueue 3"}}\n',
        "environment.variables.A",
    ),
    (
        "setup-command-with-line-break",
        'scheduler: htcondor\nenvironment: {setup_commands: ["true\\nqueue 3"]}\n',
        "environment.setup_commands[0]",
    ),
    (
        "conda-with-line-break",
        'scheduler: htcondor\nenvironment: {conda: "ml\\nqueue 3"}\n',
        "environment.conda",
    ),
    (
        "log-dir-adds-sbatch-line",
        'scheduler: slurm\npaths: {log_dir: "/tmp/logs\\n#SBATCH --wrap=evil"}\n',
        "paths.log_dir",
    ),
    (
        "scratch-dir-runs-a-command",
        "scheduler: slurm\npaths: {scratch_dir: '/tmp; touch /tmp/pwned'}\n",
        "paths.scratch_dir",
    ),
    (
        "scratch-dir-command-substitution",
        "scheduler: slurm\npaths: {scratch_dir: '/tmp/$(touch pwned)'}\n",
        "paths.scratch_dir",
    ),
    (
        "shared-dir-backquote",
        "scheduler: slurm\npaths: {shared_dir: '/tmp/`id`'}\n",
        "paths.shared_dir",
    ),
    (
        "lcg-view-closes-its-quotes",
        "scheduler: htcondor\nenvironment: {lcg_view: '/cvmfs/x\"; touch /tmp/pwned; \"'}\n",
        "environment.lcg_view",
    ),
    (
        "venv-with-space",
        "scheduler: local\nenvironment: {venv: '/opt/my venv'}\n",
        "environment.venv",
    ),
    (
        "partition-adds-sbatch-line",
        'scheduler: slurm\nslurm: {partition: "gpu\\n#SBATCH --wrap=evil"}\n',
        "slurm.partition",
    ),
    ("account-with-space", "scheduler: slurm\nslurm: {account: 'phys ics'}\n", "slurm.account"),
    (
        "sbatch-option-redirects-output",
        "scheduler: slurm\nslurm: {extra_directives: ['--output=/home/u/.bashrc']}\n",
        "slurm.extra_directives[0]",
    ),
    (
        "sbatch-option-with-space",
        "scheduler: slurm\nslurm: {extra_directives: ['--reservation=a b']}\n",
        "slurm.extra_directives[0]",
    ),
    (
        "gpu-name-adds-statement",
        'scheduler: htcondor\ndefaults: {gpus: 1, gpu_names: ["A100\\nqueue 7"]}\n',
        "defaults.gpu_names[0]",
    ),
    (
        "gpu-name-breaks-the-regexp-string",
        "scheduler: htcondor\ndefaults: {gpu_names: ['A100\") || true || regexp(\"']}\n",
        "defaults.gpu_names[0]",
    ),
    (
        "image-adds-statement",
        'scheduler: htcondor\ncontainer: {image: "docker://x\\nexecutable = /bin/sh"}\n',
        "container.image",
    ),
    (
        "image-closes-its-string",
        "scheduler: htcondor\ncontainer: {image: '/cvmfs/x\" ; MY.Evil = \"1'}\n",
        "container.image",
    ),
    (
        "want-os-adds-queue",
        'scheduler: htcondor\nhtcondor: {want_os: "el9\\"\\nqueue 9"}\n',
        "htcondor.want_os",
    ),
    (
        "accounting-group-adds-queue",
        'scheduler: htcondor\nhtcondor: {accounting_group: "g\\nqueue 9"}\n',
        "htcondor.accounting_group",
    ),
    (
        "interface-runs-a-command",
        "scheduler: local\nnetwork: {interface: 'eth0;id'}\n",
        "network.interface",
    ),
    (
        "redirector-with-escape-sequence",
        'scheduler: local\nxrootd: {redirector: "root://eos\\e[31m"}\n',
        "xrootd.redirector",
    ),
]


@pytest.mark.parametrize(("text", "field"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_site_validate_refuses_the_attack_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, field: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    assert main(["site", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and f"{field}:" in err and "fix:" in err, err
    assert "Traceback" not in err


def simple_site(**changes: object) -> Site:
    return Site(name="t", scheduler="htcondor").model_copy(update=changes)


def render(site: Site, name: str = "t", workdir: Path = Path("/tmp/w")) -> str:
    job = JobSpec(
        name=name, command=("true",), resources=Resources.from_site(site), workdir=workdir
    )
    backend = HTCondorBackend(site)
    rendered = backend.render(job)
    backend.lint(rendered, job)
    return rendered.files["job.sub"]


def test_values_built_in_code_cannot_add_statements_either() -> None:
    unchecked = HTCondorSettings.model_construct(
        extra_attributes={"MY.Project": '"ml"\nexecutable = /bin/sh\nqueue 5'}
    )
    with pytest.raises(InvalidValue, match="line break"):
        render(simple_site(htcondor=unchecked))


# What the renderer wrote before values were checked: the lint refuses each.
INJECTED = {
    "second-executable": "executable = /bin/sh\n",
    "early-queue": "queue 5\n",
    "continued-line": "MY.A = 1 \\\n",
    "include-command": "include command : id\n",
}


@pytest.mark.parametrize("extra", INJECTED.values(), ids=INJECTED.keys())
def test_lint_refuses_a_description_with_an_injected_statement(extra: str) -> None:
    text = render(simple_site())
    lines = text.splitlines(keepends=True)
    hostile = "".join([*lines[:-1], extra, lines[-1]])
    with pytest.raises(SchedulerError, match="not the description batchml wrote"):
        parse_submit(hostile, "job.sub", executable="/tmp/w/job.sh")


def test_lint_refuses_an_unexpected_executable() -> None:
    with pytest.raises(SchedulerError, match=r"runs '/tmp/w/job\.sh', not '/bin/sh'"):
        parse_submit(render(simple_site()), "job.sub", executable="/bin/sh")


@pytest.mark.parametrize(
    "name",
    ["a\nexecutable = /bin/sh", "x\\", "cost $$(Memory)", "$(DOLLAR)", "a\x1b[31mb", "$$ and $"],
)
def test_hostile_job_names_stay_one_batch_name(name: str) -> None:
    description = htcondor2.Submit(render(simple_site(), name=name))
    assert description.getQArgs() == "1"
    label = description.expand("batch_name")
    assert "\n" not in label and "$$(" not in label and label.strip()


def test_dollars_read_back_literally() -> None:
    site = simple_site(
        htcondor=HTCondorSettings(extra_attributes={"MY.Cost": '"$$ $ $$$ $(x) $ENV(HOME)"'})
    )
    workdir = Path("/tmp/a$$b$/c$")
    description = htcondor2.Submit(render(site, name="a$$b $$$ c$(x)", workdir=workdir))
    assert description.expand("batch_name") == "a$$b $$$ c$(x)"
    assert description.expand("initialdir") == str(workdir)
    assert description.expand("MY.Cost") == '"$$ $ $$$ $(x) $ENV(HOME)"'


def test_trailing_backslash_in_workdir_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["submit", "train", "--site", "lxplus", "--dry-run", "--workdir", "w\\", "--", "true"]
    assert main(args) == 2
    assert "backslash" in capsys.readouterr().err


def test_worker_description_carries_dollars_and_is_linted(tmp_path: Path) -> None:
    site = simple_site(environment=Environment(variables={"WHO": "$(whoami) $$ $x"}))
    security = security_in_files(tmp_path)
    cluster = HTCondorBackend(site).cluster(Resources.from_site(site), security=security)
    try:
        text = cluster.job_script()
    finally:
        cluster.close()
    description = parse_submit(text, "worker", executable="/bin/sh")
    # the arguments' own quoting doubles the single quotes; every dollar is intact
    assert "export WHO=''$(whoami) $$ $x''" in description.expand("Arguments")


def test_job_script_variables_stay_values(tmp_path: Path) -> None:
    site = Site(
        name="t",
        scheduler="local",
        environment=Environment(variables={"A": "1; touch pwned", "B": "$(touch pwned)'\""}),
    )
    job = JobSpec(name="n", command=("true",), resources=Resources(), workdir=tmp_path)
    text = backend_for(site).render(job).files["job.sh"]
    exports = "\n".join(line for line in text.splitlines() if line.startswith("export "))
    shown = subprocess.run(
        ["bash", "-c", f'{exports}\nprintf "%s|%s" "$A" "$B"'],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shown.stdout == "1; touch pwned|$(touch pwned)'\""
    assert not (tmp_path / "pwned").exists()
