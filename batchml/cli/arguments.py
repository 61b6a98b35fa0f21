"""Argument types of the command line: a bad number is a usage error (exit 2) naming the option.

argparse's own ``type=int`` takes ``-1`` and ``0`` where only a positive count
makes sense (``cluster up --jobs 0`` used to wait for ever for no worker), and
``type=float`` takes ``nan`` and ``inf``; these types refuse them at parse
time, with the option in the message, before anything starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from batchml.config.units import is_count
from batchml.errors import InvalidValue


def positive(text: str) -> int:
    """A whole number of 1 or more."""
    if not is_count(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def count(text: str) -> int:
    """A whole number of 0 or more."""
    if not is_count(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return int(text)


def bounded(low: int, high: int) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        if not is_count(text) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low} to {high}")
        return int(text)

    return parse


def port(text: str) -> int:
    """A TCP port number."""
    return bounded(1, 65535)(text)


def positive_seconds(text: str) -> float:
    """A finite number of seconds above 0, such as 0.5."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def duration_seconds(text: str) -> float:
    """A duration such as '1d' or '6h', in seconds."""
    from batchml.config.units import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except InvalidValue as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
