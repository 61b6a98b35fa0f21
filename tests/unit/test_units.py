"""Durations and sizes: every accepted form round-trips, bare numbers are refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from batchml.config.units import format_duration, format_size, parse_duration, parse_size
from batchml.errors import InvalidValue


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("3d", 259200),
        ("1w", 604800),
        ("2 hours", 7200),
        ("1 day 2 hours", 93600),
        ("01:30:00", 5400),
        ("10:00", 600),
        ("2-00:00:00", 172800),
        ("2-01:00:00", 176400),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    value = parse_duration(text)
    assert value == timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("text", ["", " ", "4000", "soon", "2x", "h2", "1h junk", "-1h"])
def test_bad_durations_name_the_forms(text: str) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_duration(text)
    assert "'2h'" in info.value.hint


@pytest.mark.parametrize(
    ("text", "n_bytes", "shown"),
    [
        ("4GB", 4 * 10**9, "4GB"),
        ("4GiB", 4 * 2**30, "4GiB"),
        ("512MiB", 512 * 2**20, "512MiB"),
        ("1.5TB", 15 * 10**11, "1500GB"),
        ("100B", 100, "100B"),
        ("2kb", 2000, "2KB"),
        ("3G", 3 * 10**9, "3GB"),
    ],
)
def test_sizes(text: str, n_bytes: int, shown: str) -> None:
    assert parse_size(text) == n_bytes
    assert format_size(n_bytes) == shown


@pytest.mark.parametrize("value", [4000, "4000", True, "lots", "4 XB", None])
def test_bad_sizes_need_units(value: object) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_size(value)  # type: ignore[arg-type]
    assert "'4GB'" in info.value.hint
