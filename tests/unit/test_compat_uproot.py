"""batchml._compat.uproot: uproot's private names still mean what batchml reads them for.

When a test here fails, an uproot release changed: check each name against the
new release, then update the module (and its CHECKED_ON) or drop the reach.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import uproot

from batchml._compat.uproot import (
    CHECKED_ON,
    INFLATER,
    INFLATING_MODULE,
    inflate_library,
    raised_inflating,
    set_inflate_library,
    xrootd_source,
)


def _moved(name: str) -> str:
    return (
        f"uproot {version('uproot')}: {name} is not where batchml._compat.uproot reaches for it "
        f"(checked on {', '.join(CHECKED_ON)}); find where it went and update the module"
    )


def test_this_uproot_is_one_the_private_names_were_checked_on() -> None:
    installed = version("uproot")
    assert installed in CHECKED_ON, (
        f"batchml._compat.uproot was checked on uproot {', '.join(CHECKED_ON)}, this is "
        f"{installed}: check {INFLATER}, XRootDSource.chunks and {INFLATING_MODULE} there, "
        "then add it to CHECKED_ON"
    )


@pytest.fixture
def zlib_file(tmp_path: Path) -> Path:
    path = tmp_path / "zlib.root"
    with uproot.recreate(path, compression=uproot.ZLIB(1)) as file:
        file["events"] = {"x": np.arange(20_000, dtype=np.float64) % 7}
    return path


@pytest.fixture
def library() -> Iterator[None]:
    """Leaves the inflating library as it found it."""
    before = inflate_library()
    yield
    if before is not None:
        set_inflate_library(before)


@pytest.mark.usefixtures("library")
def test_the_inflating_library_is_the_one_every_zlib_basket_is_read_with(zlib_file: Path) -> None:
    assert inflate_library() in ("zlib", "isal", "deflate"), _moved(INFLATER)
    set_inflate_library("zlib")
    by_zlib = uproot.open(zlib_file)["events"]["x"].array(library="np")
    set_inflate_library("no such library")  # a library uproot must refuse when it inflates
    with pytest.raises(ValueError, match="no such library") as caught:
        uproot.open(zlib_file)["events"]["x"].array(library="np")
    assert raised_inflating(caught.value), _moved(INFLATING_MODULE)
    set_inflate_library("isal")
    by_isal = uproot.open(zlib_file)["events"]["x"].array(library="np")
    np.testing.assert_array_equal(by_isal, by_zlib)


def test_an_error_raised_elsewhere_is_not_taken_for_a_damaged_basket() -> None:
    try:
        raise ValueError("not in uproot")
    except ValueError as exc:
        assert not raised_inflating(exc)


def test_every_vector_read_goes_through_xrootd_sources_chunks() -> None:
    base = uproot.source.xrootd.XRootDSource
    handler = xrootd_source()
    assert issubclass(handler, base) and handler is not base
    parameters = list(inspect.signature(base.chunks).parameters)
    assert parameters == ["self", "ranges", "notifications"], _moved("XRootDSource.chunks")
    # the one request left out: an empty vector read answers nothing, asks the server nothing
    assert handler.chunks(handler.__new__(handler), [], notifications=None) == []
