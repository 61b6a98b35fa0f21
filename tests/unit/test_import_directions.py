"""The rooms of batchml/ and the one direction of their arrows, read from every import;
and the size of what they hold.

cli -> demo -> areas -> config -> errors; everything may use _fs and _compat;
hpo uses backends and registry (and data's loader statistics, for a trial's I/O
profile), package uses registry and inference; data and inference import no
other area; nothing imports cli. Imports are read with ast (those in
functions and under TYPE_CHECKING too: an arrow is an arrow), so a new import
against the direction fails here, naming the file, the import and the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import batchml

PACKAGE = Path(batchml.__file__).parent

# What each room may import besides itself. "version" is batchml/__init__.py.
EVERYWHERE = {"errors", "_fs", "_compat", "version"}
AREAS = {"backends", "hpo", "data", "registry", "package", "inference"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "version": set(),
    "trial_report": set(),  # imported by users' training scripts: the standard library only
    "_compat": {"errors"},
    "_fs": {"errors"},
    "config": EVERYWHERE,
    "data": EVERYWHERE | {"config"},
    "inference": EVERYWHERE,  # a deployed package has onnxruntime and numpy, no pydantic
    "registry": EVERYWHERE | {"config"},
    "backends": EVERYWHERE | {"config"},
    "hpo": EVERYWHERE | {"config", "backends", "registry", "data", "trial_report"},
    "package": EVERYWHERE | {"config", "registry", "inference"},
    "triton_session": {"inference"},  # the old import path of TritonSession
    "demo": EVERYWHERE | {"config"} | AREAS,
    "cli": EVERYWHERE | {"config", "demo", "trial_report"} | AREAS,
}
TOP_MODULES = {"__init__", "_fs", "errors", "trial_report", "triton_session"}
# Old import paths kept for users, each nothing but a re-export of the module that moved.
SHIMS = {"batchml/data/synthetic.py": "batchml.demo.sample"}


def _module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return "version" if len(parts) == 1 else parts[1]


def _imports(path: Path) -> list[str]:
    """The batchml modules ``path`` imports (for ``from batchml import x``: batchml.x or the
    package itself, whichever the name is)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; write batchml.<room>.<module>"
            module = node.module or ""
            if module == "batchml":
                found += [_submodule_or_package(alias.name) for alias in node.names]
            else:
                found.append(module)
    return [name for name in found if name == "batchml" or name.startswith("batchml.")]


def _submodule_or_package(name: str) -> str:
    is_module = (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()
    return f"batchml.{name}" if is_module else "batchml"


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_import_points_the_allowed_way() -> None:
    wrong = []
    for path in _sources():
        relative = path.relative_to(PACKAGE.parent).as_posix()
        room = _room(_module_of(path))
        assert room in ALLOWED, f"{relative}: room {room!r} has no place in ALLOWED"
        for imported in _imports(path):
            target = _room(imported)
            if target == room or SHIMS.get(relative) == imported:
                continue
            if target not in ALLOWED[room]:
                allowed = ", ".join(sorted(ALLOWED[room]))
                wrong.append(f"{relative} imports {imported}: {room} may use only {allowed}")
    assert not wrong, "\n".join(wrong)


def test_nothing_but_cli_imports_cli() -> None:
    users = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in _sources()
        if _room(_module_of(path)) != "cli"
        for name in _imports(path)
        if _room(name) == "cli"
    ]
    assert not users


def test_the_top_of_the_package_holds_a_handful_of_modules() -> None:
    assert {p.stem for p in PACKAGE.glob("*.py")} == TOP_MODULES


def test_a_kept_import_path_is_only_a_re_export() -> None:
    for relative, home in SHIMS.items():
        tree = ast.parse((PACKAGE.parent / relative).read_text())
        body = [n for n in tree.body if not isinstance(n, ast.Expr)]  # the docstring
        imports = [n for n in body if isinstance(n, ast.ImportFrom)]
        assert [n.module for n in imports] == [home], relative
        rest = [ast.unparse(n).split(" =")[0] for n in body if n not in imports]
        assert rest == ["__all__"], relative


def test_no_module_holds_more_than_600_lines() -> None:
    """A module that long holds two concerns: split it by concern (DESIGN.md, Layout)."""
    long = {str(p.relative_to(PACKAGE.parent)): n for p in _sources() if (n := _lines(p)) > 600}
    assert not long, long


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())
