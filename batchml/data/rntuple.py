"""Reading an RNTuple in steps of whole clusters, field by field.

uproot's ``RNTuple.iterate`` has three costs a training pipeline pays on every
file it opens or every epoch it reads:

- its first read of each opened file lists every field of the header, twice
  (``to_akform`` calls ``keys()``, and building the field list is quadratic in
  the number of fields): seconds for a NanoAOD RNTuple of 1,300 fields, per
  file and per reader, whatever few fields are asked for;
- its steps are counted in entries whatever the clusters: a cluster cut by a
  step boundary is read and inflated for both steps;
- it ignores ``decompression_executor``.

So here the steps end on cluster boundaries, and each step reads each field
with the field's own ``array()`` (which looks only at that field), in the
decompression pool when there is one (fields inflate in parallel). A field's
arrays are still uproot's: only the order of the requests is chosen here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from typing import Any

from batchml.config.units import parse_size
from batchml.data import listing


def cluster_steps(
    ntuple: Any, fields: Sequence[str], start: int, stop: int, step_size: int | str
) -> list[tuple[int, int]]:
    """[start, stop) cut at cluster boundaries into steps of about ``step_size``.

    step_size: entries, or a size ('50 MB') of the asked fields once inflated.
    A step holds at least one cluster (or what of it lies in [start, stop)).
    """
    if isinstance(step_size, str):
        entries = _entries_for(ntuple, fields, parse_size(step_size))
    else:
        entries = step_size
    edges = [int(c.num_first_entry) for c in ntuple.cluster_summaries]
    edges = [e for e in edges if start < e < stop] + [stop]
    steps, begin = [], start
    for end, after in zip(edges, [*edges[1:], None], strict=True):
        if after is None or after - begin > entries:
            steps.append((begin, end))
            begin = end
    return steps


def _entries_for(ntuple: Any, fields: Sequence[str], size: int) -> int:
    """Entries whose asked fields take about ``size`` bytes once inflated (at least 1).

    (From the page list; uproot's ``num_entries_for`` fails on a field.)
    """
    per_entry = listing.inflated_bytes(ntuple, fields) / max(1, int(ntuple.num_entries))
    return max(1, int(size / per_entry)) if per_entry else int(ntuple.num_entries) or 1


def iterate(
    ntuple: Any,
    fields: Sequence[str],
    start: int,
    stop: int,
    *,
    step_size: int | str,
    library: str,
    executor: Executor | None,
) -> Iterator[tuple[dict[str, Any], int, int]]:
    """(arrays by field, first entry, stop entry) of each step of [start, stop)."""
    chosen = {name: ntuple[name] for name in fields}  # (made here, not in the pool's threads)
    for begin, end in cluster_steps(ntuple, fields, start, stop, step_size):
        if executor is None:
            arrays = {
                name: field.array(entry_start=begin, entry_stop=end, library=library)
                for name, field in chosen.items()
            }
        else:
            pending = {
                name: executor.submit(
                    field.array, entry_start=begin, entry_stop=end, library=library
                )
                for name, field in chosen.items()
            }
            arrays = {name: future.result() for name, future in pending.items()}
        yield arrays, begin, end
