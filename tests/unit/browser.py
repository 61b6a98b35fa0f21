"""What a real browser makes of a page: headless Chromium (Debian's ``chromium``).

Decoding the embedded PNGs in Python proves they are PNGs, not that a browser
shows them (a quoting slip in the ``src`` attribute or a truncated data URI
passes that check and still renders as a broken image). So the page is opened
in Chromium and each ``<img>`` is asked whether it loaded. The report itself is
never touched: a copy gets a tiny script that, once every image has loaded or
failed (the ``load`` event), writes what it saw into an attribute of ``<body>``,
which ``--dump-dom`` hands back. Tests that call it carry the ``chromium`` marker
(tests/conftest.py skips them locally without Chromium, fails them in CI).
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

_PROBE = (
    "<script>window.addEventListener('load', () => document.body.setAttribute("
    "'data-images', JSON.stringify([...document.images].map("
    "i => [i.complete, i.naturalWidth, i.naturalHeight]))));</script>"
)
_RESULT = re.compile(r"data-images=\"([^\"]*)\"")


class Image(NamedTuple):
    complete: bool
    width: int
    height: int


def rendered_images(page: Path) -> list[Image]:
    """Every ``<img>`` of the page as Chromium loaded it, in document order."""
    source = page.read_text()
    head, body_end, tail = source.rpartition("</body>")
    assert body_end, f"{page} has no </body>"
    with tempfile.TemporaryDirectory(prefix="batchml-chromium-") as tmp:
        copy = Path(tmp) / page.name
        copy.write_text(head + _PROBE + body_end + tail)
        dom = _dump_dom(copy, Path(tmp) / "profile")
    found = _RESULT.search(dom)
    assert found, f"the page's load event never fired in Chromium; its DOM:\n{dom[:2000]}"
    return [Image(*i) for i in json.loads(html.unescape(found[1]))]


def _dump_dom(page: Path, profile: Path) -> str:
    """The DOM after the load event, from a fresh profile with no network side trips."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox",  # root in CI has no user namespace sandbox
        "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=5000",
        "--dump-dom", page.as_uri(),
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
