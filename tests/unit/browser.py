"""What a real browser makes of a page: headless Chromium (Debian's ``chromium``).

Decoding the embedded PNGs in Python proves they are PNGs, not that a browser
shows them (a quoting slip in the ``src`` attribute or a truncated data URI
passes that check and still renders as a broken image). So the page is opened
in Chromium and each ``<img>`` is asked whether it loaded, each link where it
points once the browser resolved it, the page how tall it is, and the text a reader
sees (``innerText``: what the page says once rendered). The report
itself is never touched: a copy gets a ``<base>`` (so relative links resolve
from the report's folder, as they would in the original) and a tiny script
that, once every image has loaded or failed (the ``load`` event), writes what it
saw into an attribute of ``<body>``, which ``--dump-dom`` hands back. Tests that
call it carry the ``chromium`` marker (tests/conftest.py skips them locally
without Chromium, fails them in CI).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

CHROMIUM = "chromium"
TIMEOUT_S = 60
WIDTH = 1200

_PROBE = (
    "<script>window.addEventListener('load', () => document.body.setAttribute("
    "'data-seen', JSON.stringify({images: [...document.images].map("
    "i => [i.complete, i.naturalWidth, i.naturalHeight]), links: [...document.links].map("
    "a => a.href), height: document.documentElement.scrollHeight, "
    "text: document.body.innerText})));</script>"
)
_RESULT = re.compile(r"data-seen=\"([^\"]*)\"")


class Image(NamedTuple):
    complete: bool
    width: int
    height: int


class Rendered(NamedTuple):
    images: list[Image]  # every <img>, in document order
    links: list[str]  # every <a href>, resolved by the browser
    height: int  # of the whole page, in CSS pixels at WIDTH
    text: str  # what a reader sees: table cells separated by tabs, rows by newlines


def render(page: Path) -> Rendered:
    """The page as Chromium loaded it, ``WIDTH`` pixels wide."""
    source = page.read_text()
    head, body_end, tail = source.rpartition("</body>")
    assert body_end, f"{page} has no </body>"
    base = f"<base href='{html.escape(page.absolute().parent.as_uri())}/'>"
    with tempfile.TemporaryDirectory(prefix="batchml-chromium-") as tmp:
        copy = Path(tmp) / page.name
        copy.write_text(head.replace("<head>", "<head>" + base, 1) + _PROBE + body_end + tail)
        dom = _chromium(["--dump-dom", copy.as_uri()], Path(tmp) / "profile", WIDTH, 900)
    found = _RESULT.search(dom)
    assert found, f"the page's load event never fired in Chromium; its DOM:\n{dom[:2000]}"
    seen = json.loads(html.unescape(found[1]))
    return Rendered([Image(*i) for i in seen["images"]], seen["links"], int(seen["height"]),
                    seen["text"])  # fmt: skip


def screenshot(page: Path, png: Path, height: int) -> None:
    """A PNG of the page, ``WIDTH`` x ``height`` (give the rendered height for all of it)."""
    with tempfile.TemporaryDirectory(prefix="batchml-chromium-") as tmp:
        _chromium([f"--screenshot={png}", "--hide-scrollbars", page.absolute().as_uri()],
                  Path(tmp) / "profile", WIDTH, height)  # fmt: skip
    assert png.is_file(), f"chromium wrote no screenshot to {png}"


def _chromium(action: list[str], profile: Path, width: int, height: int) -> str:
    """Run headless Chromium from a fresh profile with no network side trips; its stdout."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox",  # root in CI has no user namespace sandbox
        "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=5000",
        f"--window-size={width},{height}", *action,
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            f"chromium did not finish in {TIMEOUT_S} s; stderr:\n{_text(error.stderr)}"
        ) from error
    assert result.returncode == 0, f"chromium exited {result.returncode}; stderr:\n{result.stderr}"
    return result.stdout


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""
