"""uproot's internals batchml reaches into, reached only through here.

What the data module needs that uproot offers no documented way to get:

- the decompressor that reads ZLIB baskets (``uproot.compression._decompress_ZLIB``).
  Its ``library`` chooses zlib, ISA-L or libdeflate for every ZLIB basket read;
  uproot's public ``ZLIB.library`` only chooses how files are written. ISA-L
  gives the same bytes faster (BENCHMARKS.md, data run 2).
- its XRootD source with one request left out: uproot 5.7 asks for an empty
  vector read when a step's baskets were all read by the step before (steps
  smaller than baskets); the server answers "[3000] Read vector is invalid" and
  the source closes the file, so the next read of a file kept open between
  ranges fails. The override relies on ``XRootDSource.chunks(ranges,
  notifications)`` being the one call every vector read goes through.
- where a basket is inflated (``uproot/compression.py``): a damaged basket raises
  whatever the decompression library raises, so the place it was raised is
  what says the file is damaged.

Checked on the versions in CHECKED_ON: tests/unit/test_compat_uproot.py fails on
another release, naming the name that moved, until each is checked again.
"""

from __future__ import annotations

import functools
import os
import traceback
from typing import Any

CHECKED_ON = ("5.7.7",)
INFLATER = "uproot.compression._decompress_ZLIB"
INFLATING_MODULE = "uproot/compression.py"


def _inflater() -> Any:
    import uproot.compression

    return getattr(uproot.compression, "_decompress_ZLIB", None)


def inflate_library() -> str | None:
    """The library uproot inflates ZLIB baskets with ("zlib", "isal", "deflate"); None if moved."""
    return getattr(_inflater(), "library", None)


def set_inflate_library(library: str) -> None:
    """Have uproot inflate every ZLIB basket read from now on with ``library``."""
    inflater = _inflater()
    if inflater is not None:
        inflater.library = library


@functools.cache
def xrootd_source() -> type:
    """uproot's XRootDSource, minus the empty vector read that makes the server drop the file."""
    import uproot

    class XRootDSource(uproot.source.xrootd.XRootDSource):
        def chunks(self, ranges: list[tuple[int, int]], notifications: Any) -> list[Any]:
            if not ranges:
                return []
            return super().chunks(ranges, notifications=notifications)

    return XRootDSource


def raised_inflating(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while uproot inflated a basket (in its compression module)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return any(frame.filename.replace(os.sep, "/").endswith(INFLATING_MODULE) for frame in frames)
