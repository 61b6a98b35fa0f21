"""What a dataset reads, how it reads it and how it batches it: typed options, checked once.

``RootDataset`` takes them as keywords (``features=[...], batch_size=...``), the
form training scripts write; ``RootStream`` takes them as these objects, so a
caller that builds several datasets (one per split side, say) can share and
``dataclasses.replace`` them. Each object checks its own fields when it is made,
with one line per mistake that names the value and what to write instead, so a
bad option fails before any file is opened; the words a field takes are its
``Literal`` type, read at run time for the check and by type checkers before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar, get_args

from batchml.config.units import parse_size
from batchml.data.cut import Cut
from batchml.data.plan import Split
from batchml.errors import InvalidValue

PrefetchIn = Literal["process", "thread"]
ReaderPriority = Literal["idle", "normal"]
Output = Literal["torch", "numpy"]
Word = TypeVar("Word", bound=str)


def one_of(name: str, value: Word, choices: Sequence[str]) -> Word:
    """``value`` if it is one of ``choices``, else the error that lists them."""
    if value not in choices:
        raise InvalidValue(f"{name}={value!r} is unknown", hint=f"use one of {', '.join(choices)}")
    return value


def parse_step_size(value: int | str) -> int | str:
    """Entries (an int) or a memory size ('50 MB'), checked here rather than deep in uproot."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and parse_size(value) > 0:
        return f"{parse_size(value)} B"
    raise InvalidValue(
        f"step_size={value!r} is neither a number of entries nor a size",
        hint="write step_size=100_000 or step_size='50 MB'",
    )


def buffer_rows(value: int | str, row_bytes: int) -> int:
    """Rows of the shuffle buffer: given, or as many as fit in a memory size."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        return parse_size(value) // row_bytes
    raise InvalidValue(
        f"shuffle_buffer={value!r} is neither a number of rows nor a size",
        hint="write shuffle_buffer='32 MB' or shuffle_buffer=300_000 (0: no row buffer)",
    )


@dataclass(frozen=True)
class Retry:
    """How long a read keeps trying after the server went away: bounded in count and time.

    The delay doubles from ``first_delay`` up to ``max_delay``; a read that made
    progress since the last failure starts counting again.
    """

    attempts: int = 6
    first_delay: float = 0.5
    max_delay: float = 10.0
    deadline: float = 300.0

    def delay(self, failure: int) -> float:
        return float(min(self.max_delay, self.first_delay * 2 ** (failure - 1)))


@dataclass(frozen=True)
class Selection:
    """What to read: the branches that make the columns, and which entries to keep.

    features: branch names, one column each. jagged: ``{"jet_pt": 10}`` pads (with
    ``pad_value``) or clips each list to 10 columns. target/weights: branch names
    (weights default to 1). cut: an expression such as ``"njet >= 2 and ht > 300"``
    (see ``cut.py``). split: ``("train", 0.8)`` or ``("validation", 0.8)``,
    decided per entry by hash (the side is a ``str``, checked here, so that a
    script may pass the side it was given).

    Each mistake gets its own message: a string where a list belongs (which
    Python would read as one branch per letter), a name that is not a string,
    a jagged length that is not a positive whole number, no column at all.
    """

    features: Sequence[str]
    target: str | None = None
    weights: str | None = None
    cut: str | None = None
    jagged: Mapping[str, int] | None = None
    pad_value: float = 0.0
    split: tuple[str, float] | None = None

    def __post_init__(self) -> None:
        features, jagged = self.features, self.jagged
        if isinstance(features, str) or not isinstance(features, Sequence):
            raise InvalidValue(
                f"features={features!r} is not a list of branch names",
                hint=f"write features=[{features!r}]" if isinstance(features, str) else _FEATURES,
            )
        if not isinstance(jagged, (Mapping, type(None))):
            raise InvalidValue(
                f"jagged={jagged!r} is not a mapping of branch to length", hint=_JAGGED
            )
        self._check_names()
        for branch, width in (jagged or {}).items():
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
                raise InvalidValue(
                    f"jagged={{{branch!r}: {width!r}}}: the length to pad or clip to must be "
                    "a whole number of at least 1",
                    hint=_JAGGED,
                )
        if not features and not jagged:
            raise InvalidValue(
                "no feature columns: features is empty and jagged names no branch", hint=_FEATURES
            )
        self.parsed_cut()
        self.parsed_split()

    def _check_names(self) -> None:
        """Every branch name is a non-empty string; no feature is listed twice."""
        roles = [b for b in (self.target, self.weights) if b is not None]
        for name in [*self.features, *(self.jagged or {}), *roles]:
            if not isinstance(name, str) or not name:
                raise InvalidValue(
                    f"branch name {name!r} is not a non-empty string", hint=_FEATURES
                )
        features = list(self.features)
        repeated = sorted({f for f in features if features.count(f) > 1})
        if repeated:
            raise InvalidValue(
                f"features lists {', '.join(map(repr, repeated))} more than once",
                hint="list each branch once",
            )

    def parsed_cut(self) -> Cut | None:
        return Cut(self.cut) if self.cut else None

    def parsed_split(self) -> Split | None:
        return Split.parse(self.split)


@dataclass(frozen=True)
class ReadOptions:
    """How to read: uproot's steps, reading ahead and where, the cache, the network.

    step_size: entries or a size ('50 MB') per uproot read.
    prefetch: bytes of ready batches the reading may hold ahead (None: off).
    prefetch_in: "process" reads in a forked process, out of the training
    process's GIL (see ``reader_process.py``; threads where there is no fork, and
    in DataLoader workers, which are processes already); "thread" in threads.
    reader_priority: with prefetch on, "idle" runs the reading threads only on CPU
    the rest of the job leaves idle (see ``prefetch.idle_thread``); "normal" shares
    it equally, better where other users' work runs beside the job outside any
    cgroup.
    decompression_threads: uproot's decompression pool per reader (0: none).
    cache_dir: copy remote files here once and read them locally (verified).
    timeout/retry: per-request timeout and the bounded retry with resume after a failure.
    """

    step_size: int | str = "50 MB"
    prefetch: str | None = "256 MB"
    prefetch_in: PrefetchIn = "process"
    reader_priority: ReaderPriority = "idle"
    decompression_threads: int = 0
    cache_dir: str | None = None
    timeout: float | None = None
    retry: Retry = field(default_factory=Retry)

    def __post_init__(self) -> None:
        parse_step_size(self.step_size)
        self.prefetch_bytes()
        one_of("prefetch_in", self.prefetch_in, get_args(PrefetchIn))
        one_of("reader_priority", self.reader_priority, get_args(ReaderPriority))

    def prefetch_bytes(self) -> int:
        """The prefetch budget in bytes (0: off)."""
        return parse_size(self.prefetch) if self.prefetch else 0


@dataclass(frozen=True)
class BatchOptions:
    """How entries are dealt, mixed and cut into batches.

    range_entries: the unit that is shuffled and dealt to readers (best a
    multiple of an entry step_size: a range otherwise ends with a short read,
    and a row buffer scatters it in).
    shuffle_buffer: the row buffer that mixes rows across ranges and files, as a
    memory size (default 32 MB: 32 MB / (4 bytes x (columns + 4)) rows, such as
    333k rows of 20 features, 3 ranges of 100k) or a number of rows (0: rows stay
    in file order within each range). Each epoch draws a new order, fixed by
    (seed, epoch, reader). Larger buffers mix more but cost more CPU: each row is
    gathered from and scattered into it at random (BENCHMARKS.md, data runs 6-8).
    shuffle: False reads ranges and rows in file order.
    """

    batch_size: int = 1024
    range_entries: int = 100_000
    shuffle: bool = True
    shuffle_buffer: int | str = "32 MB"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.range_entries < 1:
            raise InvalidValue(
                f"batch_size={self.batch_size}, range_entries={self.range_entries}: "
                "sizes must be positive",
                hint="use batch_size >= 1, range_entries >= 1",
            )
        buffer_rows(self.shuffle_buffer, 1)


@dataclass(frozen=True)
class StreamOptions:
    """Everything a ``RootStream`` needs: the files, the tree, and the three concerns above.

    files: paths, globs, ``root://`` URLs (wildcards expanded by listing the server).
    tree: TTree or RNTuple name.
    """

    files: str | Sequence[str]
    selection: Selection
    tree: str = "events"
    reading: ReadOptions = field(default_factory=ReadOptions)
    batching: BatchOptions = field(default_factory=BatchOptions)


_FEATURES = "write features=['HT', 'nJet'] (and jagged={'Jet_pt': 4} for lists)"
_JAGGED = "write jagged={'Jet_pt': 4}: each list padded or clipped to 4 columns"
