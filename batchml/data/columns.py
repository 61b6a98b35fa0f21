"""What the entries mean: branches to read, their kinds, and chunks turned into batch columns.

A model takes a fixed-width float32 matrix, so each jagged branch (jets per
event) is padded or clipped to a stated length and spread over that many
columns, named ``jet_pt[0]`` ... ``jet_pt[9]``; a fixed-size array branch
(``float[3]``) is a list of known length and is given the same way. Branch kinds
are checked on the first entry of each file before any long read starts, so a
string, nested or unreadable branch (a ``std::bitset`` uproot cannot
deserialize) is reported at once, by name, rather than as an error mid-epoch;
so is a cut that would give a list per entry (see ``cut.py``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from batchml.data import listing
from batchml.data.cut import Cut
from batchml.data.diagnosis import as_data_error
from batchml.data.errors import BranchNotFoundError, UnsupportedBranchError, where
from batchml.data.plan import Split

if TYPE_CHECKING:
    from batchml.data.options import Selection

Table = dict[str, np.ndarray]
"""One block of rows as numpy columns: features (n, F) float32, target, weight, entry (int64)."""

Rows = np.ndarray
"""One block of rows as records (``row_dtype``): the columns of a row side by side.

What the pipeline moves from a decoded chunk to a batch's slot: the row buffer
gathers and scatters whole rows, and a record is one place in memory
(``buffer.py``). Split into contiguous columns (``as_columns``) only where a
batch leaves the pipeline.
"""


def row_dtype(width: int) -> np.dtype[np.void]:
    """A row of ``width`` features (float32), its target and weight (float32) and entry number."""
    return np.dtype(
        [
            ("features", np.float32, (width,)),
            ("target", np.float32),
            ("weight", np.float32),
            ("entry", np.int64),
        ]
    )


def as_columns(rows: Rows) -> Table:
    """Each field of the rows as a contiguous column (a model takes contiguous tensors)."""
    return {name: np.ascontiguousarray(rows[name]) for name in rows.dtype.names or ()}


@dataclass(frozen=True)
class ColumnSpec:
    """The branches a dataset reads and the feature columns it makes from them."""

    features: tuple[str, ...]
    jagged: Mapping[str, int] = field(default_factory=dict)
    target: str | None = None
    weights: str | None = None
    cut: Cut | None = None
    pad_value: float = 0.0

    @property
    def inputs(self) -> tuple[str, ...]:
        """Feature branches in column order: the listed features, then other jagged ones."""
        return self.features + tuple(b for b in self.jagged if b not in self.features)

    @property
    def branches(self) -> tuple[str, ...]:
        """Every branch to read, each once."""
        extra = (self.target, self.weights, *(self.cut.branches if self.cut else ()))
        return tuple(dict.fromkeys([*self.inputs, *(b for b in extra if b)]))

    @property
    def columns(self) -> tuple[str, ...]:
        """The names of the feature matrix's columns."""
        names: list[str] = []
        for branch in self.inputs:
            width = self.jagged.get(branch)
            names += [branch] if width is None else [f"{branch}[{i}]" for i in range(width)]
        return tuple(names)

    def check(self, tree: Any, url: str, tree_name: str) -> frozenset[str]:
        """Every branch exists and holds what its role takes; the cut gives one value per entry.

        Features, target and weights hold numbers (or lists of numbers when given
        in ``jagged``); a cut's branches may also hold lists, which it reduces.
        Returns the branches that hold a list per entry (read with awkward).
        """
        missing = [b for b in self.branches if b not in tree]  # (not keys(): slow on RNTuples)
        if missing:
            raise BranchNotFoundError(
                f"no branch {', '.join(map(repr, missing))} in {where(url, tree_name)}",
                hint=_alternatives(missing, listing.names(tree), url),
            )
        if tree.num_entries == 0:
            return frozenset(b for b in self.branches if b in self.jagged)
        sample = _first_entry(tree, self.branches, url, tree_name)
        kinds = {b: _kind(ak.to_layout(sample[b])) for b in self.branches}
        roles = set(self.inputs) | {self.target, self.weights}
        for branch, kind in kinds.items():
            padded = branch in self.jagged
            if kind == ("jagged" if padded else "flat") or (
                branch not in roles and kind in ("flat", "jagged")
            ):
                continue
            raise UnsupportedBranchError(
                f"branch {branch!r} in {where(url, tree_name)} holds {kind} values "
                f"({ak.type(sample[branch]).content}), which this dataset cannot feed a model",
                hint=_kind_hint(branch, kind, sample[branch]),
            )
        if self.cut is not None:
            lists = {b: kinds[b] == "jagged" for b in self.cut.branches}
            self.cut.check(lists, where(url, tree_name))
        return frozenset(b for b, kind in kinds.items() if kind == "jagged")

    def rows(self, arrays: Any, url: str, start: int, split: Split | None, offset: int) -> Rows:
        """Rows of one chunk that pass the cut and the split, as records (``Rows``).

        ``arrays`` maps branch names to numpy or awkward arrays. ``offset`` is the
        file's first global entry number, so ``entry`` names each entry uniquely
        across all files (to join predictions back, or to check a read).
        """
        n = len(arrays[self.branches[0]])
        entries = np.arange(start, start + n, dtype=np.int64)
        keep = np.ones(n, dtype=bool)
        if self.cut is not None:
            keep &= self.cut.mask({b: arrays[b] for b in self.cut.branches})
        if split is not None:
            keep &= split.keep(url, entries)
        chosen: slice | np.ndarray = slice(None) if keep.all() else keep  # a slice copies nothing
        entries = entries[chosen]
        out = np.empty(len(entries), dtype=row_dtype(len(self.columns)))
        features, at = out["features"], 0
        for branch in self.inputs:
            block = self._block(arrays[branch][chosen], self.jagged.get(branch))
            width = 1 if block.ndim == 1 else block.shape[1]
            features[:, at : at + width] = block.reshape(len(entries), width)
            at += width
        for name, source in (("target", self.target), ("weight", self.weights)):
            out[name] = 1.0 if source is None else np.asarray(arrays[source][chosen])
        out["entry"] = entries + offset
        return out

    def _block(self, column: Any, width: int | None) -> np.ndarray:
        if width is None:
            return np.asarray(column)
        padded = ak.fill_none(ak.pad_none(column, width, axis=1, clip=True), self.pad_value)
        return ak.to_numpy(padded)


def _alternatives(missing: Sequence[str], available: Sequence[str], url: str) -> str:
    """The branches there, or for a large tree the names closest to the missing ones."""
    if len(available) <= 20:
        return f"branches there: {', '.join(sorted(available)) or 'none'}"
    close = {c for m in missing for c in difflib.get_close_matches(m, available, n=3)}
    listing = f"all {len(available)}: batchml data inspect {url}"
    return f"close names there: {', '.join(sorted(close))}; {listing}" if close else listing


def _first_entry(tree: Any, branches: Sequence[str], url: str, tree_name: str) -> Any:
    """The first entry of ``branches``; a branch uproot cannot read is named with its type.

    An RNTuple is read field by field: its ``arrays()`` first lists every field
    of the header (seconds for a NanoAOD RNTuple of 1,300 fields), a field's
    own ``array()`` only that field.
    """
    try:
        if listing.is_rntuple(tree):
            return {b: tree[b].array(entry_stop=1) for b in branches}
        return tree.arrays(list(branches), entry_stop=1)
    except Exception as exc:
        failure = exc
    for branch in branches:  # which one? (only after a failure: one request per branch)
        try:
            tree.arrays([branch], entry_stop=1)
        except Exception as exc:
            if type(exc).__module__.startswith("uproot.") and not isinstance(exc, OSError):
                raise UnsupportedBranchError(
                    f"branch {branch!r} in {where(url, tree_name)} holds "
                    f"{tree[branch].typename}, which uproot cannot read "
                    f"({type(exc).__name__})",
                    hint="leave it out of features, target, weights and cut",
                ) from exc
            raise as_data_error(exc, url, tree_name, [branch]) from exc
    raise as_data_error(failure, url, tree_name, branches) from failure


def _kind_hint(branch: str, kind: str, values: Any) -> str:
    if kind == "jagged":
        length = _fixed_size(values) or 10
        return f"give its length: jagged={{{branch!r}: {length}}} (--jagged {branch}={length})"
    if kind == "flat":
        return f"{branch!r} holds one number per entry: list it in features, not jagged"
    return "read numbers or lists of numbers; convert this branch when writing"


def _fixed_size(values: Any) -> int | None:
    """The length of a fixed-size array branch (``float[3]``), else None."""
    layout = ak.to_layout(values)
    if layout.is_numpy and len(layout.inner_shape) == 1:
        return int(layout.inner_shape[0])
    return int(layout.size) if layout.is_regular else None


def _kind(layout: Any) -> str:
    """'flat', 'jagged' (also a fixed-size array), or a word for what a model cannot take.

    ('string', 'nested', 'record'.)
    """
    if layout.parameter("__array__") in ("string", "bytestring"):
        return "string"
    if layout.is_numpy:
        return {1: "flat", 2: "jagged"}.get(layout.purelist_depth, "nested")
    if layout.is_list or layout.is_regular:
        if layout.content.parameter("__array__") in ("char", "byte"):
            return "string"
        return "jagged" if layout.content.is_numpy and layout.purelist_depth == 2 else "nested"
    return "record" if layout.is_record else "unsupported"


def spec_from(selection: Selection) -> ColumnSpec:
    """The columns a Selection makes (its fields were checked when it was made)."""
    return ColumnSpec(
        features=tuple(selection.features),
        jagged=dict(selection.jagged or {}),
        target=selection.target,
        weights=selection.weights,
        cut=selection.parsed_cut(),
        pad_value=float(selection.pad_value),
    )
