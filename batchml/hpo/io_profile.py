"""Each trial's reading, kept in the study: was storage the bottleneck, and what would help?

A trial process counts what its RootDatasets read and how long its loops waited
for batches (``batchml.data.loader_stats.process_totals``). At each report, and
once as it ends, it writes that as one small JSON attribute, ``batchml.io``
(isolation.py). Why then: a report's write waits for the attributes written
before it, so a trial killed later (preempted, out of walltime) keeps the
profile of its last report; and a report comes once an epoch, so the training
step pays nothing but a few clock reads per batch. The study's report
(report.py) and `batchml hpo status` read it back from here.

A trial is I/O-bound when it waited for data longer than ``IO_BOUND_FRACTION``
of its time (from its objective's start to the reading): its GPU or CPU sat
idle that long, and faster reading would have shortened it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from optuna.trial import FrozenTrial

from batchml.data.loader_stats import LoaderStats
from batchml.hpo.outcome import IO_ATTR

IO_BOUND_FRACTION = 0.2
FORMAT_VERSION = 1
_NUMBERS = tuple(f.name for f in fields(LoaderStats) if f.name != "bytes_from")
_SHOWN_TRIALS = 8  # I/O-bound trials `hpo status` names before "and N more"


@dataclass(frozen=True)
class IoProfile:
    """What one trial read and how long it waited, over ``elapsed_s`` of the trial."""

    elapsed_s: float
    stats: LoaderStats

    @property
    def wait_fraction(self) -> float:
        """Share of the trial's time spent waiting for the next batch."""
        return self.stats.wait_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        """MB read per second of the trial."""
        return self.stats.bytes_read / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def events_per_s(self) -> float:
        """Events read per second of the trial."""
        return self.stats.events_read / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def timed(self) -> bool:
        """False when the batches came through a plain DataLoader with workers (not timed)."""
        return self.stats.wait_s + self.stats.consume_s > 0

    @property
    def io_bound(self) -> bool:
        return self.wait_fraction > IO_BOUND_FRACTION

    @property
    def remote(self) -> list[str]:
        """The XRootD servers bytes were read from directly (not through the node cache)."""
        return [o for o in self.stats.bytes_from if o.startswith(("root://", "roots://"))]

    def to_attr(self) -> dict[str, Any]:
        """The attribute's value: plain numbers, four significant digits (a few hundred bytes)."""
        numbers = {name: _short(getattr(self.stats, name)) for name in _NUMBERS}
        origins = {origin: _short(count) for origin, count in self.stats.bytes_from.items()}
        return {"format": FORMAT_VERSION, "elapsed_s": _short(self.elapsed_s), **numbers,
                "bytes_from": origins}  # fmt: skip

    @classmethod
    def of(cls, trial: FrozenTrial) -> IoProfile | None:
        """The trial's profile, or None if it recorded none (or one this batchml cannot read)."""
        value = trial.user_attrs.get(IO_ATTR)
        if not isinstance(value, dict) or value.get("format") != FORMAT_VERSION:
            return None
        numbers = {name: float(value.get(name, 0.0)) for name in _NUMBERS}
        origins = {str(k): float(v) for k, v in dict(value.get("bytes_from", {})).items()}
        stats = LoaderStats(**numbers, bytes_from=origins)
        return cls(float(value.get("elapsed_s", 0.0)), stats)

    def sources(self) -> str:
        """``root://eos.cern.ch:1094 120 MB, local 3.1 MB``: the bytes by origin, most first."""
        ranked = sorted(self.stats.bytes_from.items(), key=lambda item: -item[1])
        return ", ".join(f"{origin} {_megabytes(count)}" for origin, count in ranked) or "-"

    def cache(self) -> str:
        """``3 hits, 4 copies``, or ``-`` without cache_dir."""
        hits, copies = int(self.stats.cache_hits), int(self.stats.cache_copies)
        return f"{hits} hits, {copies} copies" if hits or copies else "-"

    def advice(self) -> list[str]:
        """What would make this trial's reading faster (empty unless it is I/O-bound)."""
        if not self.io_bound:
            return []
        tips = []
        if self.remote and not self.stats.cache_copies:
            tips.append(
                "cache_dir (a node-local folder such as $TMPDIR): the files are copied once "
                "and repeated epochs over the same files read the local copy"
            )
        tips.append(
            "more reading threads: decompression_threads=2 or more (uproot's pool per "
            "reader), or dataset.loader(num_workers=N) for N readers"
        )
        if self.remote:
            tips.append(
                f"a nearer replica of the files, or the site's XRootD redirector "
                f"(xrootd.redirector in the site config) instead of {', '.join(self.remote)}"
            )
        return tips


def profiles(trials: Sequence[FrozenTrial]) -> list[tuple[FrozenTrial, IoProfile]]:
    """The trials that recorded their reading, each with its profile, by trial number."""
    found = [(t, p) for t in trials if (p := IoProfile.of(t)) is not None]
    return sorted(found, key=lambda pair: pair[0].number)


def status_lines(trials: Sequence[FrozenTrial]) -> list[str]:
    """What `batchml hpo status` says about reading: one line, two with I/O-bound trials."""
    measured = profiles(trials)
    if not measured:
        return []
    waiting = statistics.median(p.wait_fraction for _, p in measured)
    rate = statistics.median(p.mb_per_s for _, p in measured)
    lines = [
        f"data: {len(measured)} trial(s) measured; median {_percent(waiting)} of a trial's "
        f"time waiting for data, {rate:.1f} MB/s read"
    ]
    bound = [(t, p) for t, p in measured if p.io_bound]
    if bound:
        named = ", ".join(
            f"trial {t.number} ({_percent(p.wait_fraction)})" for t, p in bound[:_SHOWN_TRIALS]
        )
        more = f" and {len(bound) - _SHOWN_TRIALS} more" if len(bound) > _SHOWN_TRIALS else ""
        lines.append(
            f"I/O-bound (waiting > {_percent(IO_BOUND_FRACTION)} of the trial's time): "
            f"{named}{more}; `batchml hpo report` says what would help"
        )
    return lines


def _short(value: float) -> float:
    return float(f"{value:.4g}")


def _megabytes(count: float) -> str:
    return f"{count / 1e6:.3g} MB"


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.0f} %"
