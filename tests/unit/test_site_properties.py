"""Property tests over site files: any text in a string field is refused by name or arrives intact.

For random text (weighted towards the characters each language treats as
syntax) in one field of a site file, either loading refuses it with an error
naming that field, or the rendered job parses back with exactly the
statements expected and the value unchanged: HTCondor descriptions through
``htcondor2.Submit``, job scripts through bash itself, Slurm scripts through
``bash -n`` and their ``#SBATCH`` lines. The real condor_submit does the same
in tests/integration/test_submit_dry_run.py.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import htcondor2
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchml.backends import backend_for
from batchml.backends.base import JobSpec
from batchml.config.resources import Resources
from batchml.config.site_lookup import ResolvedSite, load_site
from batchml.config.templates import classad_string
from batchml.errors import ConfigError

# Characters that are syntax somewhere (shell, submit language, ClassAd, #SBATCH, YAML).
SYNTAX = [*"$()\\\"'`;#=:{}[]/ ~.,-_|&<>*?!%@+\n\r\t\x1b\x00\x85\u2028\u202e", "$$", "$("]
TEXT = st.lists(st.one_of(st.sampled_from(SYNTAX), st.characters(codec="utf-8")), max_size=16).map(
    "".join
)
WORD = st.text(alphabet="abcXYZ019_.-", min_size=1, max_size=8)
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load(data: dict[str, Any]) -> ResolvedSite:
    """The site file ``data`` as batchml reads it (through YAML, from a file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "prop.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=False))
        return load_site(path)


def refused_naming(data: dict[str, Any], field: str) -> ResolvedSite | None:
    """None when loading refuses ``data`` naming ``field``; the site when it is accepted."""
    try:
        return load(data)
    except ConfigError as error:
        fields = [p.field for p in error.problems]
        inside = (f"{field}.", f"{field}[", f"{field} ")
        assert any(f == field or f.startswith(inside) for f in fields), (field, str(error))
        return None


def render(resolved: ResolvedSite, workdir: Path = Path("/tmp/prop-job")) -> dict[str, str]:
    site = resolved.site
    job = JobSpec(
        name="prop", command=("true",), resources=Resources.from_site(site), workdir=workdir
    )
    backend = backend_for(site)
    rendered = backend.render(job)
    backend.lint(rendered, job)
    return rendered.files


TEMPLATE_KEYS = {
    "universe", "initialdir", "executable", "transfer_executable", "should_transfer_files",
    "when_to_transfer_output", "output", "error", "log", "batch_name",
    "request_cpus", "request_memory", "request_disk", "my.maxruntime",
}  # fmt: skip


def condor_fields() -> dict[str, tuple[Callable[[str], dict[str, Any]], str, Callable]]:
    """Field -> (site data holding text, the submit key it lands in, its expected expansion)."""
    base = {"scheduler": "htcondor"}
    return {
        "htcondor.want_os": (
            lambda t: {**base, "htcondor": {"want_os": t}},
            "MY.WantOS",
            classad_string,
        ),
        "htcondor.accounting_group": (
            lambda t: {**base, "htcondor": {"accounting_group": t}},
            "accounting_group",
            str,
        ),
        "htcondor.extra_attributes": (
            lambda t: {**base, "htcondor": {"extra_attributes": {"MY.Note": classad_string(t)}}},
            "MY.Note",
            classad_string,
        ),
        "container.image": (
            lambda t: {**base, "container": {"image": t}},
            "MY.SingularityImage",
            classad_string,
        ),
        "defaults.gpu_names": (
            lambda t: {**base, "defaults": {"gpus": 1, "gpu_names": [t]}},
            "requirements",
            lambda t: f'regexp("{t}", TARGET.GPUs_DeviceName ?: TARGET.CUDADeviceName)',
        ),
    }


@EXAMPLES
@given(field=st.sampled_from(sorted(condor_fields())), text=TEXT)
def test_htcondor_fields_are_refused_or_read_back(field: str, text: str) -> None:
    make, key, expected = condor_fields()[field]
    if field == "htcondor.extra_attributes":
        text = text.replace("\x00", "")  # no ClassAd string literal can hold a NUL
    resolved = refused_naming(make(text), field)
    if resolved is None:
        return
    description = htcondor2.Submit(render(resolved)["job.sub"])
    assert description.getQArgs() == "1"
    keys = {k.lower() for k in description.keys()}  # noqa: SIM118 - Submit is not a dict
    assert keys == TEMPLATE_KEYS | {key.lower()} | ({"request_gpus"} if "gpu" in field else set())
    assert description.expand(key) == expected(text)


@EXAMPLES
@given(name=st.one_of(WORD, TEXT), value=TEXT)
def test_job_script_variables_are_refused_or_arrive_intact(name: str, value: str) -> None:
    data = {"scheduler": "local", "environment": {"variables": {name: value}}}
    resolved = refused_naming(data, "environment.variables")
    if resolved is None:
        return
    script = render(resolved)["job.sh"]
    exports = [line for line in script.splitlines() if line.startswith("export ")]
    shown = bash(f'{exports[0]}\nprintf "%s" "${{{name}}}"')
    assert shown == value


@EXAMPLES
@given(field=st.sampled_from(["lcg_view", "venv", "conda"]), text=TEXT)
def test_environment_setup_is_refused_or_one_shell_word(field: str, text: str) -> None:
    data = {"scheduler": "local", "environment": {field: text}}
    resolved = refused_naming(data, f"environment.{field}")
    if resolved is None:
        return
    script = render(resolved)["job.sh"]
    bash("", "-n", input_text=script)
    setup = [x for x in script.splitlines() if x.startswith((".", "conda activate"))]
    if not text:  # an empty value is no setup at all
        assert setup == []
        return
    line = setup[0]
    word = line.removeprefix("conda activate ").removeprefix(". ")
    names = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text)
    env = {name: "v" for name in names}
    assert bash(f'set -- {word}\nprintf "%s" "$#"', env=env) == "1"
    if "$" not in text and not text.startswith("~"):
        suffix = {"lcg_view": "/setup.sh", "venv": "/bin/activate", "conda": ""}[field]
        assert bash(f'set -- {word}\nprintf "%s" "$1"') == text + suffix


SLURM_FIELDS = {
    "partition": "--partition={}",
    "account": "--account={}",
    "qos": "--qos={}",
    "constraint": "--constraint={}",
    "gpu_type": "--gres=gpu:{}:1",
}


@EXAMPLES
@given(field=st.sampled_from([*SLURM_FIELDS, "extra_directives"]), text=TEXT)
def test_slurm_fields_are_refused_or_one_sbatch_line(field: str, text: str) -> None:
    value: Any = [f"--comment={text}"] if field == "extra_directives" else text
    data = {"scheduler": "slurm", "defaults": {"gpus": 1}, "slurm": {field: value}}
    resolved = refused_naming(data, f"slurm.{field}")
    if resolved is None:
        return
    script = render(resolved)["job.sbatch"]
    bash("", "-n", input_text=script)
    lines = script.splitlines()
    header = [x for x in lines if x.startswith("#SBATCH")]
    plain = {"scheduler": "slurm", "defaults": {"gpus": 1}, "slurm": {}}
    baseline = render(load(plain))["job.sbatch"]
    added = 0 if field == "gpu_type" else 1
    assert len(header) == baseline.count("#SBATCH") + added
    wanted = f"--comment={text}" if field == "extra_directives" else SLURM_FIELDS[field]
    assert f"#SBATCH {wanted.format(text)}" in header
    assert lines[-1].startswith("exec ")  # nothing after the script's one command


@settings(max_examples=12, deadline=None)
@given(log=TEXT, scratch=TEXT)
def test_slurm_worker_paths_are_refused_or_stay_one_option(log: str, scratch: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = {"log_dir": f"{folder}/{log}", "scratch_dir": scratch}
        data = {"scheduler": "slurm", "paths": paths}
        try:
            resolved = load(data)
        except ConfigError as error:
            assert {p.field for p in error.problems} <= {"paths.log_dir", "paths.scratch_dir"}
            return
        cluster = backend_for(resolved.site).cluster(
            Resources.from_site(resolved.site), security=False
        )
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    header = [x for x in script.splitlines() if x.startswith("#SBATCH")]
    assert [x.split()[1] for x in header[:3]] == ["-J", "-e", "-o"]
    assert all(len(x.split()) == 3 for x in header[1:3])  # the log folder is one word
    command = script.splitlines()[-1]
    names = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", scratch)
    words = bash(f'set -- {command}\nprintf "%s" "$#"', env={n: "v" for n in names})
    assert int(words) == len(command.split())  # no word split off or glued on by the shell


def bash(script: str, *options: str, env: dict[str, str] | None = None,
         input_text: str | None = None) -> str:  # fmt: skip
    """Run ``script`` (or stdin) in a clean bash; its stdout. A syntax error fails the test."""
    argv = ["bash", *options] + ([] if input_text is not None else ["-c", script])
    done = subprocess.run(
        argv, input=input_text, env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (script or input_text, done.stderr)
    return done.stdout
