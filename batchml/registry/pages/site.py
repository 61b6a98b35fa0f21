"""The browsable registry: static pages of models, versions, aliases and cards, kept up to date.

The pages are plain HTML files with relative links and inline style, so they
read the same from EOS's web view, from ``python -m http.server`` or straight
from disk, and the folder can be copied anywhere. A registry of 10,000
versions must not be rewritten in full on every run: each version's card
is written again only when something it shows changed (its notes, its aliases,
its attachments, or the batchml that renders it); the state file records what
each page was made from. The model and index pages are rendered each time
(they list everything) and written only when their bytes changed. Pages of
versions gc removed are removed too. Every page is written atomically.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchml._fs import write_atomic
from batchml.errors import InvalidValue
from batchml.registry.attachments import committed_kinds
from batchml.registry.manifest import MARKER
from batchml.registry.on_disk import dump_json, make_dirs, read_json
from batchml.registry.pages.document import to_html
from batchml.registry.pages.site_pages import (
    INDEX,
    by_version,
    card_document,
    index_document,
    model_document,
    model_page,
    version_page,
)
from batchml.registry.registry_errors import DamagedFile
from batchml.registry.store import Registry
from batchml.registry.version import ModelVersion

STATE = ".batchml-site.json"
_FORMAT = "batchml-registry-site"
_PAGE = re.compile(r"models/[A-Za-z0-9][A-Za-z0-9._-]*/(index|versions/[0-9]+)\.html")
Progress = Callable[[str, int, int], None]  # model, versions done, versions of that model


@dataclass(frozen=True)
class SiteReport:
    """How many pages were written, left as they were, and removed."""

    written: int
    unchanged: int
    removed: int

    @property
    def pages(self) -> int:
        return self.written + self.unchanged


@dataclass
class _Pages:
    """The pages of one run: each written only when what it was made from changed."""

    out: Path
    old: dict[str, str]
    new: dict[str, str] = field(default_factory=dict)
    written: int = 0

    def put(self, rel: str, fingerprint: str, render: Callable[[], str]) -> None:
        self.new[rel] = fingerprint
        path = self.out / rel
        if self.old.get(rel) != fingerprint or not path.is_file():
            make_dirs(path.parent)
            write_atomic(path, render().encode())
            self.written += 1


def write_site(registry: Registry, out: Path, progress: Progress | None = None) -> SiteReport:
    """Bring the pages in ``out`` up to date with ``registry``; returns what was done.

    ``out`` must be new, empty, or a folder this function wrote before.
    """
    from batchml import __version__

    pages = _Pages(out, _read_state(out))
    rows = []
    for name in registry.models():
        survey = registry.survey(name)
        versions = survey.versions
        aliases = registry.aliases(name)
        on_version = by_version(aliases)
        for done, version in enumerate(versions, 1):
            pointing = on_version.get(version.version, [])
            made_from = [__version__, version.digest, version.annotations, pointing,
                         _attachment_digests(version)]  # fmt: skip
            render = functools.partial(_card_page, version, pointing)
            pages.put(version_page(name, version.version), _digest(made_from), render)
            if progress:
                progress(name, done, len(versions))
        page = to_html(model_document(registry, name, survey, aliases))
        pages.put(model_page(name), _digest(page), functools.partial(str, page))
        rows.append((name, len(versions), versions[-1].version if versions else None, aliases))
    index = to_html(index_document(registry, rows))
    pages.put(INDEX, _digest(index), lambda: index)
    removed = _remove_stale(out, set(pages.old) - set(pages.new))
    write_atomic(out / STATE, dump_json({"format": _FORMAT, "pages": pages.new}))
    return SiteReport(pages.written, len(pages.new) - pages.written, removed)


def _card_page(version: ModelVersion, aliases: list[str]) -> str:
    return to_html(card_document(version, aliases))


def _read_state(out: Path) -> dict[str, str]:
    """What each page was made from; refuses a non-empty folder it did not write."""
    if not out.exists():
        make_dirs(out)
        return {}
    if not out.is_dir():
        raise InvalidValue(f"{out} is a file", hint="give a folder for the pages with -o")
    try:
        state = read_json(out / STATE)
    except FileNotFoundError:
        if any(out.iterdir()):
            raise InvalidValue(
                f"{out} is not empty and holds no {STATE}, so it was not written by "
                "'batchml registry html'",
                hint="choose a new or empty folder with -o (nothing in it was changed)",
            ) from None
        return {}
    except DamagedFile:
        return {}  # a torn state file only costs a full rewrite
    pages = state.get("pages") if isinstance(state, dict) else None
    return pages if state.get("format") == _FORMAT and isinstance(pages, dict) else {}


def _digest(value: Any) -> str:
    data = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def _attachment_digests(version: ModelVersion) -> dict[str, Any]:
    """{kind: the attachment's manifest sha256}: an attachment replaced by hand shows too."""
    layout = version.layout
    found = {}
    for kind in committed_kinds(layout, version.name, version.version):
        try:
            marker = read_json(layout.attachment(version.name, version.version, kind) / MARKER)
        except (OSError, DamagedFile):
            marker = None
        found[kind] = marker.get("manifest_sha256") if isinstance(marker, dict) else None
    return found


def _remove_stale(out: Path, stale: set[str]) -> int:
    """Remove pages of versions or models that are gone, and folders left empty.

    Only names this module writes are removed: a state file edited by someone
    else cannot make it delete anything outside the pages.
    """
    stale = {rel for rel in stale if _PAGE.fullmatch(rel)}
    for rel in stale:
        (out / rel).unlink(missing_ok=True)
        for parent in (out / rel).parents:
            if parent == out:
                break
            with contextlib.suppress(OSError):  # not empty: another page lives there
                parent.rmdir()
    return len(stale)
