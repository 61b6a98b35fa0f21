"""The JSON record of a version, checked before anything is written.

Everything ``publish`` is given besides the artifacts (metrics, parameters,
preprocessing constants, tags) must survive a JSON round trip: numpy and torch
scalars and arrays are turned into plain numbers and lists, anything else that
JSON cannot hold is refused with the field named, so bad input never leaves a
half-written version behind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

from batchml.errors import InvalidValue
from batchml.registry.names import check_name


def jsonable(value: Any, field: str) -> Any:
    """``value`` as plain JSON types; InvalidValue names the field and the bad type."""

    def convert(obj: Any) -> Any:
        if hasattr(obj, "tolist"):  # numpy and torch arrays and scalars
            return obj.tolist()
        if isinstance(obj, PathLike):
            return str(obj)
        if isinstance(obj, (set, frozenset)):
            return sorted(obj)
        raise TypeError(type(obj).__name__)

    try:
        return json.loads(json.dumps(value, default=convert, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise InvalidValue(
            f"{field} holds a value JSON cannot store ({exc})",
            hint="use numbers, strings, lists and dicts",
        ) from None


def check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Metrics are named numbers (gc ranks versions by them)."""
    checked: dict[str, float] = {}
    for key, value in jsonable(dict(metrics or {}), "metrics").items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidValue(
                f"metric {key!r} is {value!r}, not a number", hint="give metrics as numbers"
            )
        checked[key] = float(value)
    return checked


def check_tags(tags: Sequence[str] | None) -> list[str]:
    return sorted({check_name(str(tag), "tag") for tag in (tags or ())})


def metric_value(manifest: Mapping[str, Any], metric: str) -> float | None:
    """A version's value of ``metric``, None if it was not recorded or is NaN."""
    value = manifest.get("metrics", {}).get(metric)
    return None if value is None or math.isnan(value) else float(value)
