"""Training data: ROOT files read with uproot, locally or over XRootD.

Stands alone: nothing else in batchml is imported from here, and torch is only
imported by the parts that make tensors: ``RootDataset`` and ``RootLoader`` are
loaded on first use, so ``import batchml.data`` stays torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchml.data.errors import (
    BranchNotFoundError,
    DataError,
    DataFileNotFoundError,
    DataPermissionError,
    DataTimeoutError,
    DataUnreachableError,
    TreeNotFoundError,
    UnsupportedBranchError,
)
from batchml.data.loader_stats import LoaderStats
from batchml.data.options import BatchOptions, ReadOptions, Retry, Selection, StreamOptions
from batchml.data.stats import FeatureStats
from batchml.data.stream import Batch, RootStream
from batchml.data.xrootd import configure_client

if TYPE_CHECKING:
    from batchml.data.dataset import RootDataset, RootLoader

__all__ = [
    "Batch",
    "BatchOptions",
    "BranchNotFoundError",
    "DataError",
    "DataFileNotFoundError",
    "DataPermissionError",
    "DataTimeoutError",
    "DataUnreachableError",
    "FeatureStats",
    "LoaderStats",
    "ReadOptions",
    "Retry",
    "RootDataset",
    "RootLoader",
    "RootStream",
    "Selection",
    "StreamOptions",
    "TreeNotFoundError",
    "UnsupportedBranchError",
    "configure_client",
]
_TORCH_EXPORTS = ("RootDataset", "RootLoader")


def __getattr__(name: str) -> Any:
    if name in _TORCH_EXPORTS:
        from batchml.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'batchml.data' has no attribute {name!r}")
