"""One self-contained HTML page: the study's report and the demo's.

Every plot is a matplotlib PNG embedded as a data URI, so the page can be
copied, mailed or opened from EOS without files beside it. Paths become links
relative to the page's folder when they lie inside it (the folder can then move
as a whole), absolute ``file://`` links otherwise. Every table has a header row.
Written atomically: a half-written page is never seen.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from batchml._fs import write_atomic

Cell = str | Path  # a Path is shown as a link to it


class Figure(NamedTuple):
    caption: str
    png: bytes


class TableData(NamedTuple):
    caption: str
    header: Sequence[str]
    rows: Sequence[Sequence[Cell]]


Block = TableData | Figure | str  # a str is a paragraph


@dataclass
class Section:
    """A heading and what follows it, in order."""

    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    """The page: headline facts, then the sections, listed at the top."""

    title: str
    facts: list[tuple[str, Cell]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def html(self, folder: Path) -> str:
        """The page as it reads from ``folder`` (where relative links start)."""
        e = html.escape
        anchors = [_anchor(s.title) for s in self.sections]
        contents = "".join(
            f"<li><a href='#{a}'>{e(s.title)}</a></li>"
            for a, s in zip(anchors, self.sections, strict=True)
        )
        parts = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{e(self.title)}</title>",
            f"<style>{_STYLE}</style></head><body><h1>{e(self.title)}</h1>",
            _table(TableData("", ("", ""), self.facts), folder, header=False),
            f"<nav><ul>{contents}</ul></nav>",
        ]
        for anchor, section in zip(anchors, self.sections, strict=True):
            parts.append(f"<section id='{anchor}'><h2>{e(section.title)}</h2>")
            parts += [_block(b, folder) for b in section.blocks]
            parts.append("</section>")
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def write(self, path: Path) -> None:
        write_atomic(path, self.html(path.absolute().parent).encode())


_STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;max-width:64em;margin:2em auto;padding:0 1em;"
    "color:#222}h2{border-bottom:1px solid #ddd;margin-top:2em}"
    "h3{font-size:1em;margin:1.2em 0 .3em}"
    "table{border-collapse:collapse;margin:.4em 0 1em;font-variant-numeric:tabular-nums}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}"
    "th{background:#f2f2f2}table.facts th{width:14em}"
    "img{max-width:100%}figure{margin:1em 0 1.5em}figcaption{color:#555;font-size:.93em}"
    "nav ul{columns:2;padding-left:1.2em}code{font-size:.9em;word-break:break-all}"
)


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def _block(block: Block, folder: Path) -> str:
    if isinstance(block, TableData):
        return _table(block, folder)
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode()
        caption = html.escape(block.caption)
        return (
            f"<figure><img src='data:image/png;base64,{data}' alt='{caption}'>"
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return f"<p>{html.escape(block)}</p>"


def _table(table: TableData, folder: Path, header: bool = True) -> str:
    """A captioned table; without ``header`` each row's first cell is its heading (facts)."""
    e = html.escape
    rows = []
    for row in table.rows:
        first, rest = (f"<th>{_cell(row[0], folder)}</th>", row[1:]) if not header else ("", row)
        cells = "".join(f"<td>{_cell(c, folder)}</td>" for c in rest)
        rows.append(f"<tr>{first}{cells}</tr>")
    head = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in table.header) + "</tr>" if header else ""
    caption = f"<h3>{e(table.caption)}</h3>" if table.caption else ""
    kind = "" if header else " class='facts'"
    return f"{caption}<table{kind}>{head}{''.join(rows)}</table>"


def _cell(value: Cell, folder: Path) -> str:
    if isinstance(value, Path):
        href = html.escape(link(value, folder))
        return f"<a href='{href}'><code>{html.escape(str(value))}</code></a>"
    return html.escape(value)


def link(path: Path, folder: Path) -> str:
    """An href to ``path`` from a page in ``folder``: relative inside it, file:// outside."""
    target = path.absolute()
    if target.is_relative_to(folder.absolute()):
        return quote(Path(os.path.relpath(target, folder.absolute())).as_posix())
    return target.as_uri()


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on batch nodes and in CI
    import matplotlib.pyplot as plt

    return plt


def png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    pyplot().close(figure)
    return buffer.getvalue()
