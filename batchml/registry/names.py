"""Model names, aliases and the URIs that name one version of a model.

Every name becomes a folder name inside the registry, so it is validated
before any path is built: no path separators, no ``..``, no control
characters, a length limit. The accepted URI forms are::

    name            the latest committed version
    name/3          version 3
    name@production the version the alias points at
    name@sha256:HEX the version whose manifest has that digest (a prefix of 8+ hex digits)

each optionally prefixed with ``batchml:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from batchml.config.units import is_count
from batchml.registry.registry_errors import BadReference

MAX_NAME_LENGTH = 100
SCHEME = "batchml:"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DIGEST = re.compile(r"sha256:([0-9a-f]{8,64})")
_NAME_RULE = (
    f"use 1 to {MAX_NAME_LENGTH} letters, digits, '.', '_' or '-', starting with a letter or digit"
)
URI_FORMS = "NAME, NAME/3, NAME@ALIAS or NAME@sha256:HEX (optionally prefixed 'batchml:')"


def check_name(value: str, kind: str = "model name") -> str:
    """Return ``value`` if it is safe as one folder name; refuse it with the fix otherwise."""
    if not isinstance(value, str) or not value:
        raise BadReference(f"{value!r} is not a valid {kind}: it is empty", hint=_NAME_RULE)
    if "/" in value or "\\" in value or ".." in value:
        raise BadReference(
            f"{value!r} is not a valid {kind}: '/', '\\' and '..' are refused "
            "(a name may not reach outside its folder)",
            hint=_NAME_RULE,
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadReference(
            f"{value!r} is not a valid {kind}: it contains control characters", hint=_NAME_RULE
        )
    if len(value) > MAX_NAME_LENGTH:
        raise BadReference(
            f"{value[:20]!r}... is not a valid {kind}: {len(value)} characters "
            f"(at most {MAX_NAME_LENGTH})",
            hint=_NAME_RULE,
        )
    if not _NAME.fullmatch(value):
        raise BadReference(f"{value!r} is not a valid {kind}", hint=_NAME_RULE)
    return value


def check_alias(value: str) -> str:
    """An alias is a name that cannot be mistaken for a version number."""
    check_name(value, "alias")
    if is_count(value):
        raise BadReference(
            f"{value!r} is not a valid alias: it is a number",
            hint="name versions as NAME/3; give aliases a word such as 'production'",
        )
    return value


@dataclass(frozen=True)
class ModelRef:
    """One parsed reference: a name plus at most one of version, alias or digest."""

    name: str
    version: int | None = None
    alias: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        if self.digest is not None:
            return f"{self.name}@sha256:{self.digest}"
        return self.name


def parse_ref(text: str | ModelRef) -> ModelRef:
    """Parse any accepted URI form; a malformed one is refused with the forms listed."""
    if isinstance(text, ModelRef):
        return text
    if not isinstance(text, str):
        raise BadReference(f"{text!r} is not a model reference", hint=f"write {URI_FORMS}")
    body = text.removeprefix(SCHEME)
    if "@" in body:
        name, _, target = body.partition("@")
        digest = _DIGEST.fullmatch(target)
        if digest:
            return ModelRef(check_name(name), digest=digest.group(1))
        if target.startswith("sha256:"):
            raise BadReference(
                f"{target!r} in {text!r} is not a sha256 digest",
                hint="write NAME@sha256: followed by 8 to 64 lower-case hex digits",
            )
        return ModelRef(check_name(name), alias=check_alias(target))
    name, slash, number = body.partition("/")
    check_name(name)
    if not slash:
        return ModelRef(name)
    if not is_count(number) or int(number) < 1:
        raise BadReference(
            f"{number!r} in {text!r} is not a version number",
            hint=f"versions count from 1; write {URI_FORMS}",
        )
    return ModelRef(name, version=int(number))
