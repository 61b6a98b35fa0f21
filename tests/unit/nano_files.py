"""NanoAOD-like ROOT files written with uproot: the layouts the data module meets in real files.

Counts with jagged branches (``nJet`` + ``Jet_pt``, ``Jet_eta``), many small
baskets (one per ``basket`` entries), every integer type, booleans, float32 and
float64, and a fixed-size array; the same events as a TTree or as an RNTuple.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

INTEGERS = ("i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64")


def nano_events(n: int, seed: int = 1) -> dict[str, object]:
    """The columns of ``n`` events: flat numpy arrays, jagged awkward arrays, a (n, 3) array."""
    rng = np.random.default_rng(seed)
    njet = rng.integers(0, 5, n)
    total = int(njet.sum())
    events: dict[str, object] = {
        "nJet": njet.astype(np.int32),
        "Jet_pt": ak.unflatten(rng.exponential(40, total).astype(np.float32), njet),
        "Jet_eta": ak.unflatten(rng.normal(0, 2, total).astype(np.float32), njet),
        "nMuon": rng.integers(0, 3, n).astype(np.uint32),
        "HT": rng.exponential(200, n).astype(np.float32),
        "MET": rng.exponential(50, n),  # float64
        "flag": rng.random(n) < 0.4,
        "vtx": rng.normal(0, 1, (n, 3)).astype(np.float32),
    }
    for name in INTEGERS:
        dtype = np.dtype(name.replace("i", "int").replace("u", "uint"))
        low = 0 if dtype.kind == "u" else -3
        events[name] = rng.integers(low, 4, n).astype(dtype)
    events["HT"][rng.random(n) < 0.05] = 30.1  # float32(30.1) != 30.1: cuts must see that
    return events


def write_nano(
    path: Path, events: dict[str, object], *, rntuple: bool = False, basket: int = 50
) -> Path:
    """Write ``events`` as tree 'Events' (a TTree, or an RNTuple), ``basket`` entries per basket."""
    n = len(events["nJet"])  # type: ignore[arg-type]
    with uproot.recreate(path) as out:
        if rntuple:
            tree = out.mkrntuple("Events", ak.Array(events).layout.form)
        else:
            types = {
                name: (v.dtype, v.shape[1:])
                if isinstance(v, np.ndarray) and v.ndim > 1
                else v.type.content
                if isinstance(v, ak.Array)
                else v.dtype  # type: ignore[attr-defined]
                for name, v in events.items()
            }
            tree = out.mktree("Events", types)
        for start in range(0, n, basket):
            part = {name: v[start : start + basket] for name, v in events.items()}  # type: ignore[index]
            tree.extend(ak.Array(part) if rntuple else part)
    return path
