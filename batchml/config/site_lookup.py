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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from batchml.config.site_schema import Site
from batchml.config.yaml_files import field_problem, read_yaml_mapping
from batchml.errors import ConfigError, FieldProblem, SiteNotFoundError

SHIPPED_DIR = Path(__file__).parents[1] / "site_configs"  # batchml/site_configs, in the wheel
DEFAULT_SITE = "local"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
BUILTIN = "built-in default"
SITE_FILE_HINT = (
    "the commented site files in batchml/site_configs/ describe every key; "
    "check a file with: batchml site validate FILE"
)


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
    looked = ", ".join(str(d.path) for d in dirs)
    if after is not None and name in known:
        raise SiteNotFoundError(
            f"no site named {name!r} below {after.parent} (looked in {looked})",
            hint="'extends' reaches only the folders after the file's own in the look-up "
            "order (user, site admin, shipped): merge the two files into one",
        )
    close = difflib.get_close_matches(name, known, n=1)
    raise SiteNotFoundError(
        f"no site named {name!r} (looked in {looked})",
        hint=(f"did you mean {close[0]!r}? " if close else "")
        + f"known sites: {', '.join(known)}; or give a path to a site file",
    )


def load_site(name_or_path: str | Path | None = None) -> ResolvedSite:
    """Resolve a site: an explicit path, a name, or else $BATCHML_SITE, or else 'local'."""
    if isinstance(name_or_path, str) and not name_or_path.strip():
        raise SiteNotFoundError(
            f"{name_or_path!r} is not a site name",
            hint="give a site name such as lxplus, or a path to a site file "
            "(leave the option out for $BATCHML_SITE, else 'local')",
        )
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
                hint=SITE_FILE_HINT,
            )
        raw = read_yaml_mapping(current, example="scheduler: local", hint=SITE_FILE_HINT)
        parent = raw.pop("extends", None)
        if "name" in raw:
            raise ConfigError(
                current,
                [FieldProblem("name", "a site's name comes from its file name", "remove 'name'")],
                hint=SITE_FILE_HINT,
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
        problems = [field_problem(error, Site, origins, top=str(path)) for error in exc.errors()]
        raise ConfigError(path, problems, hint=SITE_FILE_HINT) from None
    return ResolvedSite(site=site, files=tuple(p for p, _ in chain), origins=origins)


def _extended_file(*, path: Path, parent: Any) -> Path:
    if not isinstance(parent, str):
        raise ConfigError(
            path,
            [FieldProblem("extends", f"{parent!r} is not a site name", "write extends: lxplus")],
            hint=SITE_FILE_HINT,
        )
    try:
        return find_site_file(parent, after=path)
    except SiteNotFoundError as exc:
        problems = [FieldProblem("extends", exc.message, exc.hint or "")]
        raise ConfigError(path, problems, hint=SITE_FILE_HINT) from None


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
