"""Durations and sizes as people write them in site configs and on the command line.

Schedulers disagree on units (Slurm takes minutes or D-HH:MM:SS, HTCondor
seconds and bytes or KiB, dask-jobqueue "GB" strings); batchml keeps one
representation (a timedelta, a byte count) and formats per consumer. A bare
number is refused on purpose: ``memory: 4000`` has cost users jobs (MB? GB?).
"""

from __future__ import annotations

import re
from datetime import timedelta

from batchml.errors import InvalidValue

DURATION_FORMS = "'90s', '30m', '2h', '1h30m', '3d', '1w', 'HH:MM:SS' or 'D-HH:MM:SS'"
SIZE_FORMS = "'512MB', '4GB', '4GiB', '1.5TB'"

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_UNIT_WORDS = r"w(?:eeks?)?|d(?:ays?)?|h(?:ours?|rs?)?|m(?:inutes?|ins?)?|s(?:econds?|ecs?)?"
_DURATION_PART = rf"(\d+(?:\.\d+)?)\s*({_UNIT_WORDS})"
_DURATION = re.compile(rf"(?:{_DURATION_PART}\s*)+")
_CLOCK = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def is_count(text: str) -> bool:
    """Whether ``text`` is a whole number written in ASCII digits, which ``int()`` reads.

    ``str.isdigit()`` alone also takes '²' (which ``int()`` refuses, so a user's
    '²' became a traceback) and '٣' (which ``int()`` reads as 3).
    """
    return text.isascii() and text.isdigit()


def parse_duration(text: str) -> timedelta:
    """Parse a human or Slurm-style duration; InvalidValue names the accepted forms."""
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str) or not text.strip():
        raise InvalidValue(f"{text!r} is not a duration", hint=f"write {DURATION_FORMS}")
    s = text.strip().lower()
    clock = _CLOCK.fullmatch(s)
    if clock:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in clock.groups())
        if clock.group(2) is None:  # "MM:SS", as Slurm reads two fields
            hours, minutes, seconds = 0, int(clock.group(3)), int(clock.group(4))
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if _DURATION.fullmatch(s):
        parts = re.findall(_DURATION_PART, s)
        return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[unit[0]] for n, unit in parts))
    raise InvalidValue(f"{text!r} is not a duration", hint=f"write {DURATION_FORMS}")


def format_duration(value: timedelta) -> str:
    """The shortest exact form parse_duration reads back, such as '1h30m'."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_size(text: str | int) -> int:
    """Parse '4GB' (10^9) or '4GiB' (2^30) into bytes; a bare number is refused."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise InvalidValue(f"{text!r} has no unit", hint=f"write {SIZE_FORMS}")
    match = _SIZE.fullmatch(text.strip())
    if not match or not (match.group(2) or match.group(4)):
        raise InvalidValue(f"{text!r} is not a size", hint=f"write {SIZE_FORMS}")
    number, prefix, binary, _ = match.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** _SIZE_POWERS[prefix.lower()])


def format_size(n_bytes: int) -> str:
    """A short exact form for whole units ('4GB', '512MiB'), else bytes ('1234B')."""
    units = [
        (base**power, f"{prefix}{suffix}")
        for base, suffix in ((1024, "iB"), (1000, "B"))
        for power, prefix in enumerate("KMGTP", start=1)
    ]
    for unit, name in sorted(units, reverse=True):
        count, rest = divmod(n_bytes, unit)
        if count and not rest:
            return f"{count}{name}"
    return f"{n_bytes}B"
