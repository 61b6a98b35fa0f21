"""What the entries mean: branches to read, their kinds, and chunks turned into batch columns.

A model takes a fixed-width float32 matrix, so each jagged branch (jets per
event) is padded or clipped to a stated length and spread over that many
columns, named ``jet_pt[0]`` ... ``jet_pt[9]``. Branch kinds are checked on the
first entry of each file before any long read starts, so a string or nested
branch is reported at once, by name, rather than as an awkward error mid-epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from batchml.data.cut import Cut
from batchml.data.errors import BranchNotFoundError, UnsupportedBranchError, where
from batchml.data.plan import Split

Table = dict[str, np.ndarray]
"""One block of rows as numpy columns: features (n, F) float32, target, weight, entry (int64)."""


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

    def check(self, tree: Any, url: str, tree_name: str) -> None:
        """Every branch exists and is numbers, or lists of numbers when given in ``jagged``."""
        available = set(tree.keys())
        missing = [b for b in self.branches if b not in available]
        if missing:
            raise BranchNotFoundError(
                f"no branch {', '.join(map(repr, missing))} in {where(url, tree_name)}",
                hint=f"branches there: {', '.join(sorted(available)) or 'none'}",
            )
        if tree.num_entries == 0:
            return
        sample = tree.arrays(list(self.branches), entry_stop=1)
        for branch in self.branches:
            kind = _kind(ak.to_layout(sample[branch]))
            jagged_ok = branch in self.jagged
            if (kind == "flat" and not jagged_ok) or (kind == "jagged" and jagged_ok):
                continue
            if kind == "jagged":
                hint = f"give its length: jagged={{{branch!r}: 10}}"
            elif kind == "flat":
                hint = f"{branch!r} holds one number per entry: list it in features, not jagged"
            else:
                hint = "read numbers or lists of numbers; convert this branch when writing"
            raise UnsupportedBranchError(
                f"branch {branch!r} in {where(url, tree_name)} holds {kind} values "
                f"({ak.type(sample[branch]).content}), which this dataset cannot feed a model",
                hint=hint,
            )

    def table(self, arrays: Any, url: str, start: int, split: Split | None, offset: int) -> Table:
        """Rows of one chunk that pass the cut and the split, as numpy columns.

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
        rows: slice | np.ndarray = slice(None) if keep.all() else keep  # a slice copies nothing
        entries = entries[rows]
        features = np.empty((len(entries), len(self.columns)), dtype=np.float32)
        at = 0
        for branch in self.inputs:
            block = self._block(arrays[branch][rows], self.jagged.get(branch))
            width = 1 if block.ndim == 1 else block.shape[1]
            features[:, at : at + width] = block.reshape(len(entries), width)
            at += width
        return {
            "features": features,
            "target": self._flat(arrays, self.target, rows, len(entries)),
            "weight": self._flat(arrays, self.weights, rows, len(entries)),
            "entry": entries + offset,
        }

    def _block(self, column: Any, width: int | None) -> np.ndarray:
        if width is None:
            return np.asarray(column)
        padded = ak.fill_none(ak.pad_none(column, width, axis=1, clip=True), self.pad_value)
        return ak.to_numpy(padded)

    @staticmethod
    def _flat(arrays: Any, branch: str | None, rows: slice | np.ndarray, n: int) -> np.ndarray:
        if branch is None:
            return np.ones(n, dtype=np.float32)
        return np.asarray(arrays[branch][rows]).astype(np.float32)


def _kind(layout: Any) -> str:
    """'flat', 'jagged', or a word for what a model cannot take ('string', 'nested', 'record')."""
    if layout.parameter("__array__") in ("string", "bytestring"):
        return "string"
    if layout.is_numpy:
        return "flat" if layout.purelist_depth == 1 else "nested"
    if layout.is_list:
        if layout.content.parameter("__array__") in ("char", "byte"):
            return "string"
        return "jagged" if layout.content.is_numpy and layout.purelist_depth == 2 else "nested"
    return "record" if layout.is_record else "unsupported"


def spec_from(
    features: Sequence[str],
    jagged: Mapping[str, int] | None,
    target: str | None,
    weights: str | None,
    cut: str | None,
    pad_value: float,
) -> ColumnSpec:
    """A ColumnSpec from RootDataset's keyword arguments (the cut parsed once here)."""
    return ColumnSpec(
        features=tuple(features),
        jagged=dict(jagged or {}),
        target=target,
        weights=weights,
        cut=Cut(cut) if cut else None,
        pad_value=pad_value,
    )
