"""Property tests of names: study, model, alias and site names, version numbers and job ids.

A name becomes a file or folder name (a journal, a registry folder, a site
file), so any text either is refused with batchml's own error (exit 2 on the
command line, the text quoted back) or is one plain path component that stays
inside its folder. The commands that take a name, given random text, exit 0
or 2 with an error and a hint line, never a traceback, and create nothing.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchml.cli import main
from batchml.config.site_lookup import find_site_file, search_dirs
from batchml.errors import BatchmlError
from batchml.hpo.storage import check_study_name
from batchml.registry import Registry
from batchml.registry.names import check_alias, check_name, parse_ref
from tests.unit.cli_sandbox import enter, snapshot

# Characters that mean something to a path, a shell, YAML or a terminal, and digits of
# other scripts (str.isdigit() takes them; int() does not take all of them).
SPECIAL = [*"/\\.~-_@:$ \t\n\r\x00\x1b\x7f*?[]{}'\"", "..", "../", "sha256:", *"²٣\U0001d7d9Ⅻ"]
PIECES = st.lists(
    st.one_of(st.sampled_from(SPECIAL), st.characters(codec="utf-8"), st.sampled_from("ab19")),
    max_size=14,
).map("".join)
DIGITS = st.text(alphabet="09²٣\U0001d7d9", min_size=1, max_size=3)  # digits, some not ASCII
REFERENCE = st.tuples(  # a good name, then what follows one in a reference or a path
    st.sampled_from(["jets", "local", "a.b", "batchml:jets"]),
    st.sampled_from(["/", "@", "@sha256:", ".", ""]),
    st.one_of(PIECES, DIGITS),
).map("".join)
TEXT = st.one_of(
    PIECES, DIGITS, REFERENCE, st.sampled_from(["jets", "local", "lxplus", "a" * 101, ".", ""])
)
EXAMPLES = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def one_component(name: str, folder: Path) -> None:
    """``name`` is a plain file name: nothing that leaves ``folder`` or hides in a terminal."""
    assert name and len(name) <= 100
    assert name not in (".", "..") and "/" not in name and "\\" not in name
    assert all(c.isprintable() and not c.isspace() for c in name), repr(name)
    assert (folder / name).resolve().parent == folder.resolve()


def accepted(check: Callable[[str], object], name: str) -> bool:
    """Whether ``check`` takes ``name``; a refusal must be batchml's error, quoting the name."""
    try:
        check(name)
    except BatchmlError as error:
        assert error.exit_code == 2
        assert repr(name)[:21] in error.message or repr(name[:20]) in error.message
        assert error.hint
        return False
    return True


@EXAMPLES
@given(name=TEXT)
def test_names_are_refused_or_one_path_component(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.getbasetemp()
    for check in (check_study_name, check_name, check_alias):
        if accepted(check, name):
            one_component(name, folder)


@EXAMPLES
@given(text=REFERENCE)
def test_model_references_parse_or_are_refused(text: str) -> None:
    try:
        ref = parse_ref(text)
    except BatchmlError as error:
        assert error.exit_code == 2 and error.hint
        return
    assert check_name(ref.name) == ref.name
    assert ref.version is None or ref.version >= 1


@EXAMPLES
@given(name=TEXT)
def test_site_names_find_only_files_of_the_look_up_folders(name: str) -> None:
    try:
        found = find_site_file(name)
    except BatchmlError as error:
        assert error.exit_code == 2 and error.hint
        return
    assert found.parent in [d.path for d in search_dirs()]
    assert found.stem == name


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty home with a registry holding jets/1 (production) and no study."""
    work = enter(tmp_path, monkeypatch)
    registry = Registry(work / "reg")
    registry.publish("jets", b"one")
    registry.alias("jets", "production", 1)
    yield tmp_path


COMMANDS = {  # the command lines that take a name, and the exit statuses they may end with
    "hpo status": (lambda name: ["hpo", "status", name], {2}),
    "hpo best": (lambda name: ["hpo", "best", name, "--json"], {2}),
    "registry show": (lambda name: ["registry", "--root", "reg", "show", name], {0, 2}),
    "registry history": (lambda name: ["registry", "--root", "reg", "history", name], {0, 2}),
    "registry verify": (lambda name: ["registry", "--root", "reg", "verify", name], {0, 2}),
    "registry alias": (
        lambda name: ["registry", "--root", "reg", "alias", "jets", name, "none"],
        {0, 2},
    ),
    "site show": (lambda name: ["site", "show", name], {0, 2}),
    "jobs list": (lambda name: ["jobs", "list", name], {0, 2}),
    "jobs cancel": (lambda name: ["jobs", "cancel", name], {2}),
}


@pytest.mark.parametrize("command", COMMANDS)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=TEXT.filter(lambda t: "\x00" not in t and not t.startswith("-")))
def test_commands_taking_a_name_exit_0_or_2_and_create_nothing(
    command: str, name: str, sandbox: Path
) -> None:
    argv, statuses = COMMANDS[command]
    before = snapshot(sandbox)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv(name))
        except SystemExit as exit_:  # argparse: a usage error
            status = exit_.code if isinstance(exit_.code, int) else 1
    assert status in statuses, err.getvalue()
    lines = err.getvalue().splitlines()
    if status and not lines[0].startswith("usage:"):
        assert lines[0].startswith("error: ") and any(x.startswith("hint: ") for x in lines)
    after = snapshot(sandbox)
    if command == "registry alias" and status == 0:  # the one that writes: an alias moved
        return
    assert after == before
