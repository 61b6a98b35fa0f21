"""A small document (sections of paragraphs and tables) written out as Markdown or as HTML.

A model card is read in two places: as ``card.md`` beside the analysis code
(GitLab and GitHub render it) and as a page of the browsable registry, opened
from EOS's web view with nothing beside it. Both come from one document, so
they cannot drift apart. Every string in it is text, never markup: the
renderers escape it, because descriptions, metric names and tags are written
by other users of a shared registry.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


class Link(NamedTuple):
    """Text that links to another page; ``href`` is relative and already URL-quoted."""

    text: str
    href: str


Cell = str | Link


class Table(NamedTuple):
    """Rows under a header; ``header=None`` makes a table of facts (first cell is the name)."""

    header: Sequence[str] | None
    rows: Sequence[Sequence[Cell]]
    caption: str = ""


Block = str | Table  # a str is a paragraph


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    """A title, facts shown first, then the sections; ``trail`` links up (the site's pages)."""

    title: str
    facts: list[tuple[str, Cell]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    trail: list[Link] = field(default_factory=list)


# -- Markdown -------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")  # emphasis, code, links, raw HTML, cells
_MD_BLOCK = re.compile(r"^(\s*)([#+=-])(?=\s|$|\2)|^(\s*\d+)([.)])(?=\s|$)")  # headings, lists


def _md(text: str, *, paragraph: bool = False) -> str:
    """Text that a Markdown renderer shows as written (no emphasis, links or raw HTML).

    A ``paragraph`` also has what would start a heading, a list or a rule escaped.
    """
    escaped = _MD_SPECIAL.sub(r"\\\1", text.replace("&", "&amp;"))
    lines = escaped.splitlines() or [""]
    if paragraph:
        lines = [_MD_BLOCK.sub(_escape_block, line) for line in lines]
    return "<br>".join(lines)


def _escape_block(found: re.Match[str]) -> str:
    if found[2]:
        return f"{found[1]}\\{found[2]}"
    return f"{found[3]}\\{found[4]}"


def _md_cell(cell: Cell) -> str:
    return f"[{_md(cell.text)}]({cell.href})" if isinstance(cell, Link) else _md(cell)


def _md_table(table: Table) -> list[str]:
    header = list(table.header) if table.header is not None else ["", ""]
    lines = [f"**{_md(table.caption)}**", ""] if table.caption else []
    lines.append("| " + " | ".join(_md(h) for h in header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in table.rows:
        cells = [_md_cell(c) for c in row]
        if table.header is None:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def to_markdown(document: Document) -> str:
    lines = [f"# {_md(document.title)}", ""]
    if document.facts:
        lines += _md_table(Table(None, document.facts))
    for section in document.sections:
        lines += [f"## {_md(section.title)}", ""]
        for block in section.blocks:
            lines += (
                _md_table(block) if isinstance(block, Table) else [_md(block, paragraph=True), ""]
            )
    return "\n".join(lines)


# -- HTML -----------------------------------------------------------------------------------

STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;max-width:70em;margin:1.5em auto;padding:0 1em;"
    "color:#222}h2{border-bottom:1px solid #ddd;margin-top:1.8em}"
    "table{border-collapse:collapse;margin:.4em 0 1em;font-variant-numeric:tabular-nums}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}"
    "th{background:#f2f2f2}table.facts th{width:13em}caption{text-align:left;font-weight:600}"
    "nav.trail{color:#555;margin-bottom:.5em}code{font-size:.9em;word-break:break-all}"
)


def _h(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f"<a href='{html.escape(cell.href)}'>{html.escape(cell.text)}</a>"
    return html.escape(cell).replace("\n", "<br>")


def _html_table(table: Table) -> str:
    parts = ["<table class='facts'>" if table.header is None else "<table>"]
    if table.caption:
        parts.append(f"<caption>{html.escape(table.caption)}</caption>")
    if table.header is not None:
        parts.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in table.header) + "</tr>")
    for row in table.rows:
        cells = [f"<td>{_h(c)}</td>" for c in row]
        if table.header is None and cells:
            cells[0] = f"<th>{_h(row[0])}</th>"
        parts.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(parts) + "</table>"


def to_html(document: Document) -> str:
    """One self-contained page: the style is inline, links are relative, no script."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{e(document.title)}</title><style>{STYLE}</style></head><body>",
    ]
    if document.trail:
        parts.append("<nav class='trail'>" + " / ".join(_h(t) for t in document.trail) + "</nav>")
    parts.append(f"<h1>{e(document.title)}</h1>")
    if document.facts:
        parts.append(_html_table(Table(None, document.facts)))
    for section in document.sections:
        parts.append(f"<section><h2>{e(section.title)}</h2>")
        for block in section.blocks:
            parts.append(_html_table(block) if isinstance(block, Table) else f"<p>{_h(block)}</p>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
