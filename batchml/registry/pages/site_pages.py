"""The pages of the browsable registry: the index, one page per model, one card per version.

Where each page lives is decided here, and every link is relative to the
page it is on, so the folder reads the same wherever it is copied.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from batchml.registry.pages.card import model_card, show
from batchml.registry.pages.document import Block, Document, Link, Section, Table
from batchml.registry.store import Registry, Survey
from batchml.registry.version import ModelVersion

INDEX = "index.html"
_DESCRIPTION_CHARS = 120


def model_page(name: str) -> str:
    return f"models/{quote(name)}/{INDEX}"


def version_page(name: str, number: int) -> str:
    return f"models/{quote(name)}/versions/{number}.html"


def by_version(aliases: dict[str, int]) -> dict[int, list[str]]:
    """{version: the aliases on it} from {alias: version}."""
    found: dict[int, list[str]] = {}
    for alias, number in aliases.items():
        found.setdefault(number, []).append(alias)
    return found


def _up(rel: str) -> str:
    """The relative path from the page ``rel`` back to the site's root folder."""
    return "../" * rel.count("/")


def card_document(version: ModelVersion, aliases: list[str]) -> Document:
    document = model_card(version, aliases, hashed=False)
    up = _up(version_page(version.name, version.version))
    document.trail = [
        Link("registry", f"{up}{INDEX}"),
        Link(version.name, f"{up}{model_page(version.name)}"),
    ]
    return document


def model_document(
    registry: Registry, name: str, survey: Survey, aliases: dict[str, int]
) -> Document:
    """A model's aliases, their history and its versions, newest first, each linked to its card."""
    versions, damaged = survey.versions, survey.damaged
    committed = {v.version for v in versions}

    def to_version(number: object) -> Link | str:
        if isinstance(number, int) and number in committed:
            return Link(f"version {number}", f"versions/{number}.html")
        return show(number)

    sections = [
        Section("Aliases", [_aliases(aliases, to_version)]),
        Section("Alias history", [_history(registry.history(name), to_version)]),
        Section("Versions", [_versions(versions, by_version(aliases), to_version)]),
    ]
    if damaged:
        problems: list[Block] = [f"{p.render()}; fix: {p.fix}" for p in damaged]
        sections.append(Section("Damaged versions", problems))
    latest = versions[-1].version if versions else None
    facts: list[tuple[str, Any]] = [
        ("versions", str(len(versions))),
        ("latest", to_version(latest) if latest else "none"),
        ("damaged", str(len(damaged))),
    ]
    trail = [Link("registry", f"{_up(model_page(name))}{INDEX}")]
    return Document(name, facts, sections, trail)


def _aliases(aliases: dict[str, int], to_version: Any) -> Block:
    if not aliases:
        return "No aliases."
    return Table(("alias", "points at"), [(a, to_version(n)) for a, n in aliases.items()])


def _history(history: list[dict[str, Any]], to_version: Any) -> Block:
    if not history:
        return "No alias was ever moved."
    rows = [
        (
            str(r["time"])[:19],
            r["alias"],
            r["outcome"] + (" (uncommitted)" if r["uncommitted"] else ""),
            to_version(r["from"]),
            to_version(r["to"]),
            f"{r['user']}@{r['host']}",
        )
        for r in reversed(history)
    ]
    return Table(("time", "alias", "outcome", "from", "to", "who"), rows)


def _versions(
    versions: list[ModelVersion], aliases: dict[int, list[str]], to_version: Any
) -> Block:
    if not versions:
        return "No committed versions."
    rows = [
        (
            to_version(v.version),
            str(v.manifest.get("created", ""))[:19],
            ", ".join(aliases.get(v.version, [])),
            ", ".join(f"{k}={show(x)}" for k, x in v.metrics.items()),
            ", ".join(v.annotations.get("tags", [])),
            _first_line(v.annotations),
        )
        for v in reversed(versions)
    ]
    return Table(("version", "created", "aliases", "metrics", "tags", "description"), rows)


def _first_line(notes: dict[str, Any]) -> str:
    text = notes.get("description")
    line = text.strip().splitlines()[0] if isinstance(text, str) and text.strip() else ""
    return line if len(line) <= _DESCRIPTION_CHARS else line[: _DESCRIPTION_CHARS - 1] + "…"


def index_document(
    registry: Registry, rows: list[tuple[str, int, int | None, dict[str, int]]]
) -> Document:
    """Every model with its number of versions, its latest and its aliases."""
    table = Table(
        ("model", "versions", "latest", "aliases"),
        [
            (
                Link(name, model_page(name)),
                str(count),
                Link(f"version {latest}", version_page(name, latest)) if latest else "none",
                ", ".join(f"{a}={n}" for a, n in aliases.items()),
            )
            for name, count, latest, aliases in rows
        ],
    )
    facts: list[tuple[str, Any]] = [("registry", str(registry.root)), ("models", str(len(rows)))]
    models: list[Block] = [table if rows else "No models."]
    return Document("batchml model registry", facts, [Section("Models", models)])
