"""What a tree holds, from its metadata alone: branch or field names, types and sizes.

For ``batchml data inspect`` and for the hints of a missing branch. Two things
uproot does not give directly:

- Sizes of TTree branches: uproot's ``compressed_bytes`` is ROOT's
  ``fZipBytes``, which counts only baskets written on their own; ROOT keeps the
  last basket of each branch inside the tree's metadata when the file is closed
  (so a small NanoAOD file, one basket per branch, shows 0 bytes everywhere).
  Those embedded baskets are added here at their size in memory.
- RNTuple fields, fast: uproot's ``keys()`` and ``typename`` build an object
  per field, which takes seconds on a NanoAOD RNTuple of 1,300 fields; the
  field records of the header give the same names and types at once, and the
  page list gives the sizes (each page's stored bytes, and its elements times
  the column's bits), summed over every column below a field.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


class Branch(NamedTuple):
    name: str
    typename: str
    stored: int
    inflated: int
    embedded: bool  # part of it lies in baskets embedded in the tree's metadata


def is_rntuple(tree: Any) -> bool:
    import uproot

    return isinstance(tree, uproot.behaviors.RNTuple.RNTuple)


def names(tree: Any) -> list[str]:
    """The branch names of a TTree, or the top-level field names of an RNTuple."""
    if is_rntuple(tree):
        return [record.field_name for _, record in _top_fields(tree)]
    return list(tree.keys())


def branches(tree: Any) -> list[Branch]:
    """Every branch of a TTree, or every top-level field of an RNTuple, with its sizes."""
    if is_rntuple(tree):
        size = _field_sizes(tree)
        return [
            Branch(record.field_name, record.type_name, *size(i), False)
            for i, record in _top_fields(tree)
        ]
    # by items(), not tree[name]: a '/' in a branch's name reads as a path in a look-up
    return [_branch(name, branch) for name, branch in tree.items()]


def inflated_bytes(ntuple: Any, fields: Sequence[str]) -> int:
    """Bytes the named fields of an RNTuple take once inflated, over all its entries."""
    size = _field_sizes(ntuple)
    return sum(size(int(ntuple[name].field_id))[1] for name in fields)


def _branch(name: str, branch: Any) -> Branch:
    extra = sum(int(basket.border) for basket in branch.embedded_baskets)
    return Branch(
        name,
        str(branch.typename),
        int(branch.compressed_bytes) + extra,
        int(branch.uncompressed_bytes) + extra,
        bool(extra),
    )


def _top_fields(ntuple: Any) -> list[tuple[int, Any]]:
    """(field id, record) of each top-level field: its own parent, in the header's order."""
    return [
        (i, record)
        for i, record in enumerate(ntuple.field_records)
        if int(record.parent_field_id) == i
    ]


def _field_sizes(ntuple: Any) -> Callable[[int], tuple[int, int]]:
    """Stored and inflated bytes of a field id: its columns and its subfields'.

    A projected field (NanoAOD's ``Muon_pt`` made from ``_collection0``) has no
    columns of its own: it reads those of its source field.
    """
    records = ntuple.field_records
    own_stored: dict[int, int] = defaultdict(int)
    own_inflated: dict[int, int] = defaultdict(int)
    columns = ntuple.column_records
    for cluster in ntuple.page_link_list:
        for index, column_pages in enumerate(cluster):
            column, pages = columns[index], column_pages.pages
            own_stored[int(column.field_id)] += sum(int(p.locator.num_bytes) for p in pages)
            elements = sum(int(p.num_elements) for p in pages)
            own_inflated[int(column.field_id)] += elements * int(column.nbits) // 8
    children: dict[int, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        if int(record.parent_field_id) != i:
            children[int(record.parent_field_id)].append(i)

    @functools.cache
    def size(field: int) -> tuple[int, int]:
        source = records[field].source_field_id
        own = field if source is None else int(source)
        below = [size(child) for child in children[field]]
        return (
            own_stored[own] + sum(b[0] for b in below),
            own_inflated[own] + sum(b[1] for b in below),
        )

    return size
