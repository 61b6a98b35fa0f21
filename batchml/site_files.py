"""Finding, merging and validating site files, remembering where every value came from.

Look-up order for a name: the user's folder, the site admin's folder, the
configs shipped inside the package. A file may say ``extends: NAME`` to start
from a site found further down that order, so a user's ``lxplus.yaml`` can
change two fields of the shipped one. The merge records, per field, which
file set it: ``batchml site show`` prints that, and an error names the file
that holds the bad value rather than the one the user happened to ask for.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from batchml.errors import ConfigError, FieldProblem, InvalidValue, SiteNotFoundError
from batchml.sites import Site

SHIPPED_DIR = Path(__file__).parent / "site_configs"
DEFAULT_SITE = "local"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
BUILTIN = "built-in default"


@dataclass(frozen=True)
class SiteDir:
    """One folder of the look-up order, with the label shown to users."""

    label: str
    path: Path


@dataclass(frozen=True)
class ResolvedSite:
    """A validated site, the files it was built from, and the origin of each field."""

    site: Site
    files: tuple[Path, ...]
    origins: dict[str, str]

    def origin_of(self, field: str) -> str:
        """The file that set ``field`` (a dotted path), or the built-in default."""
        while field:
            if field in self.origins:
                return self.origins[field]
            field = field.rpartition(".")[0]
        return BUILTIN


def search_dirs() -> list[SiteDir]:
    """The look-up order after an explicit path and $BATCHML_SITE."""
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    admin = Path(os.environ.get("BATCHML_ADMIN_SITES_DIR", "/etc/batchml/sites"))
    return [
        SiteDir("user", config_home / "batchml" / "sites"),
        SiteDir("site admin", admin),
        SiteDir("shipped", SHIPPED_DIR),
    ]


def _site_files(directory: Path) -> Iterator[Path]:
    if directory.is_dir():
        yield from sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))


def list_sites() -> list[tuple[str, SiteDir, Path]]:
    """Every (name, folder, file) the look-up order can reach; the first of a name wins."""
    seen: dict[str, tuple[str, SiteDir, Path]] = {}
    for directory in search_dirs():
        for path in _site_files(directory.path):
            seen.setdefault(path.stem, (path.stem, directory, path))
    return sorted(seen.values(), key=lambda entry: entry[0])


def find_site_file(name: str, *, after: Path | None = None) -> Path:
    """The file for site ``name``; with ``after``, only in folders below that file's folder."""
    if not _NAME.fullmatch(name):
        raise SiteNotFoundError(
            f"{name!r} is not a site name",
            hint="use letters, digits, '.', '_' and '-', or give a path to a .yaml file",
        )
    dirs = search_dirs()
    if after is not None:
        parents = [d.path.resolve() for d in dirs]
        here = after.resolve().parent
        dirs = dirs[parents.index(here) + 1 :] if here in parents else dirs
    for directory in dirs:
        for suffix in (".yaml", ".yml"):
            candidate = directory.path / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    known = sorted({entry[0] for entry in list_sites()})
    close = difflib.get_close_matches(name, known, n=1)
    looked = ", ".join(str(d.path) for d in dirs)
    raise SiteNotFoundError(
        f"no site named {name!r} (looked in {looked})",
        hint=(f"did you mean {close[0]!r}? " if close else "")
        + f"known sites: {', '.join(known)}; or give a path to a site file",
    )


def load_site(name_or_path: str | Path | None = None) -> ResolvedSite:
    """Resolve a site: an explicit path, a name, or else $BATCHML_SITE, or else 'local'."""
    chosen = name_or_path if name_or_path is not None else os.environ.get("BATCHML_SITE")
    chosen = chosen or DEFAULT_SITE
    text = str(chosen)
    if isinstance(chosen, Path) or "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(text).expanduser()
    else:
        path = find_site_file(text)
    return _resolve(path)


def _resolve(path: Path) -> ResolvedSite:
    chain: list[tuple[Path, dict[str, Any]]] = []
    current: Path | None = path
    while current is not None:
        if any(current.resolve() == seen.resolve() for seen, _ in chain):
            names = " -> ".join(str(p) for p, _ in chain)
            raise ConfigError(
                current,
                [FieldProblem("extends", f"extends loops back: {names}", "remove one 'extends'")],
            )
        raw = read_yaml_mapping(current)
        parent = raw.pop("extends", None)
        if "name" in raw:
            raise ConfigError(
                current,
                [FieldProblem("name", "a site's name comes from its file name", "remove 'name'")],
            )
        chain.append((current, raw))
        current = None if parent is None else _extended_file(path=chain[-1][0], parent=parent)
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for file, raw in reversed(chain):
        _merge_into(merged, raw, str(file), origins, prefix="")
    try:
        site = Site(name=path.stem, **merged)
    except ValidationError as exc:
        problems = [_problem(error, origins, top=str(path)) for error in exc.errors()]
        raise ConfigError(path, problems) from None
    return ResolvedSite(site=site, files=tuple(p for p, _ in chain), origins=origins)


def _extended_file(*, path: Path, parent: Any) -> Path:
    if not isinstance(parent, str):
        raise ConfigError(
            path,
            [FieldProblem("extends", f"{parent!r} is not a site name", "write extends: lxplus")],
        )
    try:
        return find_site_file(parent, after=path)
    except SiteNotFoundError as exc:
        raise ConfigError(path, [FieldProblem("extends", exc.message, exc.hint or "")]) from None


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key written twice (plain YAML keeps the last silently)."""


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise _DuplicateKey(
                None, None, f"key {key!r} appears twice in one section", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping, with errors that name the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            path,
            [
                FieldProblem(
                    "(file)", f"cannot be read: {reason}", "check the path and its permissions"
                )
            ],
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"(line {mark.line + 1}, column {mark.column + 1})" if mark else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        fix = (
            "keep only one of them"
            if isinstance(exc, _DuplicateKey)
            else "fix the syntax at that place"
        )
        raise ConfigError(path, [FieldProblem(where, f"not valid YAML: {problem}", fix)]) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise ConfigError(
            path,
            [FieldProblem("(top level)", f"the file is {kind}", "start with 'scheduler: local'")],
        )
    return data


def _merge_into(
    target: dict[str, Any], layer: dict[str, Any], source: str, origins: dict[str, str], prefix: str
) -> None:
    for key, value in layer.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            _merge_into(target[key], value, source, origins, prefix=f"{path}.")
            continue
        target[key] = value
        for stale in [p for p in origins if p.startswith(f"{path}.")]:
            del origins[stale]
        origins[path] = source


def _field_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The schema class that holds the key at ``loc`` (to list its valid keys)."""
    model: Any = Site
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        model = next(
            (
                a
                for a in _flatten_union(field.annotation)
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        if model is None:
            return None
    return model


def _flatten_union(annotation: Any) -> tuple[Any, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


_TYPE_FIXES = {
    "int": "write a whole number such as 4",
    "float": "write a number such as 7.5",
    "bool": "write true or false",
    "string": "write text (quote it if it looks like a number or a date)",
    "dict": "write a mapping of key: value lines",
    "model": "write a mapping of key: value lines",
    "list": "write a list ([a, b] or '- a' lines)",
    "tuple": "write a list ([a, b] or '- a' lines)",
}


def _problem(error: Any, origins: dict[str, str], *, top: str) -> FieldProblem:
    loc = tuple(error["loc"])
    field = _field_path(loc)
    kind: str = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        holder = _model_at(loc[:-1])
        valid = sorted(holder.model_fields) if holder else []
        valid = [k for k in valid if not (holder is Site and k == "name")]
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        fix = (
            f"did you mean {close[0]!r}? " if close else ""
        ) + f"valid keys here: {', '.join(valid)}"
        problem = f"unknown key {loc[-1]!r}"
    elif kind == "missing":
        holder = _model_at(loc)
        problem = "required key is missing"
        fix = "add 'scheduler: htcondor', 'slurm' or 'local'" if field == "scheduler" else "add it"
        fix = (
            fix
            if holder is None
            else f"add the section with the keys {', '.join(holder.model_fields)}"
        )
    elif kind == "value_error" and isinstance(ctx.get("error"), InvalidValue):
        problem, fix = ctx["error"].message, ctx["error"].hint or ""
    elif kind in ("literal_error", "enum"):
        problem, fix = f"{value!r} is not allowed", f"use one of {ctx.get('expected', '')}"
    elif kind.split("_")[0] in _TYPE_FIXES and kind.endswith(("_type", "_parsing")):
        problem, fix = f"{value!r} has the wrong type", _TYPE_FIXES[kind.split("_")[0]]
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bound = next(iter(ctx.values()), "")
        word = {
            "greater_than_equal": ">=",
            "less_than_equal": "<=",
            "greater_than": ">",
            "less_than": "<",
        }
        problem, fix = f"{value!r} is out of range", f"use a value {word[kind]} {bound}"
    else:
        problem, fix = error["msg"], "see the commented files in site_configs/ for valid values"
    source = next((origins[p] for p in _prefixes(field) if p in origins), top)
    if source != top:
        problem += f" (set in {source})"
    return FieldProblem(field, problem, fix)


def _prefixes(field: str) -> Iterator[str]:
    while field:
        yield field
        field = field.rpartition(".")[0]
