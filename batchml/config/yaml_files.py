"""Reading configuration files (YAML) and reporting their errors the batchml way.

Shared by site files and study files: a YAML reader that names the line of a
syntax error and refuses keys written twice, and the translation of pydantic's
errors into one FieldProblem per bad value (field path, problem, fix), with a
did-you-mean for unknown keys and the file that set the value.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from batchml.errors import ConfigError, FieldProblem, InvalidValue


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


def read_yaml_mapping(path: Path, example: str, hint: str) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping, with errors that name the line.

    ``hint`` says where the file's keys are described (the hint of every error here).
    """
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
            hint=hint,
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
        problems = [FieldProblem(where, f"not valid YAML: {problem}", fix)]
        raise ConfigError(path, problems, hint=hint) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise ConfigError(
            path,
            [
                FieldProblem(
                    "(top level)", f"the file is {kind}", f"start with a line such as '{example}'"
                )
            ],
            hint=hint,
        )
    return data


def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the user reads it: ``sites.local.max_jobs``, ``a[0]``."""
    text = ""
    for part in loc:
        if part == "[key]":  # pydantic's mark for a bad key of a mapping
            text += " (the key)"
        elif isinstance(part, int) or (text and "/" in part):  # a path as a key: sites./x.yaml
            text += f"[{part}]" if isinstance(part, int) else f"[{part!r}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"  # a check of the whole file, such as 'objective or command'


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The schema class that holds the key at ``loc`` (to list its valid keys)."""
    model: Any = root
    keyed = False  # the part is a key of a mapping of sections (such as sites: {name: {...}})
    for part in loc:
        if keyed:
            keyed = False
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        kinds = [_mapped(a) or a for a in _flatten_union(field.annotation)]
        keyed = any(_mapped(a) for a in _flatten_union(field.annotation))
        model = next((a for a in kinds if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return model


def _mapped(annotation: Any) -> Any:
    """The section type of a ``dict[str, Section]`` annotation (None for anything else)."""
    if typing.get_origin(annotation) is dict:
        value = typing.get_args(annotation)[-1]
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value
    return None


def _how_to_add(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """'add 'scheduler: htcondor', 'slurm' or 'local'' for a choice; the keys for a section."""
    parent = _model_at(root, loc[:-1])
    field = parent.model_fields.get(str(loc[-1])) if parent else None
    if field is not None and typing.get_origin(field.annotation) is typing.Literal:
        choices = [str(c) for c in typing.get_args(field.annotation)]
        words = [f"'{loc[-1]}: {choices[0]}'", *(f"'{c}'" for c in choices[1:])]
        return "add " + (", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0])
    section = _model_at(root, loc)
    if section is not None:
        return f"add the section with the keys {', '.join(section.model_fields)}"
    return "add it"


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


def field_problem(
    error: Any, root: type[BaseModel], origins: dict[str, str], *, top: str
) -> FieldProblem:
    """One pydantic error as a FieldProblem: the field path, what is wrong, and the fix."""
    loc = tuple(error["loc"])
    field = field_path(loc)
    kind: str = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        holder = _model_at(root, loc[:-1])
        valid = sorted(holder.model_fields) if holder else []
        valid = [k for k in valid if not (holder is root and k == "name")]
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        fix = (
            f"did you mean {close[0]!r}? " if close else ""
        ) + f"valid keys here: {', '.join(valid)}"
        problem = f"unknown key {loc[-1]!r}"
    elif kind == "missing" and loc and isinstance(loc[-1], int):  # a short list or pair
        problem, fix = f"item {loc[-1] + 1} is missing", "write every item of the list"
    elif kind == "missing":
        problem, fix = "required key is missing", _how_to_add(root, loc)
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
