"""A realistic toy sample: ttH(bb)-like signal against tt+jets-like background, as ROOT TTrees.

Why these features: the classes separate the way they do in a real analysis,
so a classifier trained on them behaves like one trained on ntuples (AUC well
above chance but far from 1, some features strong, most weak, jagged jets).
- Signal has a Higgs boson decaying to two b jets: the two highest b-tag jets
  form a mass peak near 125 GeV (``mbb``), are closer in angle (``dr_bb``), and
  the event has more jets, more b tags and a harder scalar sum (``ht``).
- Background (top pairs with extra light jets) gives a falling ``mbb`` spectrum,
  fewer b tags, softer jets.
- Lepton and missing-energy variables (from the W decay, present in both) are
  nearly identical in the two classes: weak features a model must learn to ignore.
Per-event weights mimic cross-section times luminosity (signal rare, weighted up
for training balance). Files are written with ``mktree`` + ``extend`` so they
are TTrees (``file[name] = ...`` would write an RNTuple in uproot >= 5.7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from batchml._fs import replacing

__all__ = [
    "FLAT_FEATURES",
    "JAGGED_FEATURES",
    "MAX_JETS",
    "SampleFiles",
    "generate_events",
    "write_sample",
]

FLAT_FEATURES = (
    "lep_pt",
    "lep_eta",
    "lep_phi",
    "met",
    "met_phi",
    "mt_w",
    "njet",
    "nbjet",
    "ht",
    "jet1_pt",
    "jet2_pt",
    "jet1_eta",
    "btag_max",
    "btag_2nd",
    "mbb",
    "dr_bb",
    "pt_bb",
    "deta_bb",
    "m_lep_bb",
    "centrality",
)
JAGGED_FEATURES = ("jet_pt", "jet_eta", "jet_btag")
MAX_JETS = 12


@dataclass(frozen=True)
class SampleFiles:
    """The written files per class, and the tree and branch names to read them with."""

    signal: tuple[Path, ...]
    background: tuple[Path, ...]
    tree: str = "events"
    target: str = "label"
    weight: str = "weight"


def generate_events(
    n: int, signal: bool, rng: np.random.Generator
) -> dict[str, np.ndarray | ak.Array]:
    """One chunk of events of one class, as columns (flat numpy and jagged awkward)."""
    njet = np.clip(rng.poisson(5.2 if signal else 4.3, n), 2, MAX_JETS).astype(np.int32)
    total = int(njet.sum())
    pt = rng.exponential(60.0 if signal else 45.0, total) + 25.0
    eta = rng.normal(0.0, 1.3 if signal else 1.6, total)
    btag = rng.beta(0.6, 3.0, total)  # mostly light jets
    starts = np.cumsum(njet) - njet
    n_b = np.minimum(np.where(rng.random(n) < (0.85 if signal else 0.55), 2, 1), njet)
    for k in range(2):  # the first one or two jets of an event are b jets
        has = n_b > k
        btag[starts[has] + k] = rng.beta(5.0, 1.2, int(has.sum()))
    jet_pt = ak.unflatten(pt.astype(np.float32), njet)
    jet_eta = ak.unflatten(eta.astype(np.float32), njet)
    jet_btag = ak.unflatten(btag.astype(np.float32), njet)

    if signal:
        mbb = rng.normal(125.0, 14.0, n)
        dr_bb = np.abs(rng.normal(1.4, 0.6, n)) + 0.4
    else:
        mbb = rng.exponential(70.0, n) + 30.0
        dr_bb = np.abs(rng.normal(2.3, 0.9, n)) + 0.4
    pt_bb = np.abs(rng.normal(150.0 if signal else 110.0, 60.0, n))
    lep_pt = rng.exponential(40.0, n) + 25.0
    met = rng.exponential(55.0, n) + 5.0
    lep_phi, met_phi = rng.uniform(-np.pi, np.pi, (2, n))
    mt_w = np.sqrt(2 * lep_pt * met * (1 - np.cos(lep_phi - met_phi)))
    sorted_pt = ak.sort(jet_pt, ascending=False)
    ht = ak.to_numpy(ak.sum(jet_pt, axis=1)) + lep_pt
    columns: dict[str, np.ndarray | ak.Array] = {
        "lep_pt": lep_pt,
        "lep_eta": rng.normal(0.0, 1.2, n),
        "lep_phi": lep_phi,
        "met": met,
        "met_phi": met_phi,
        "mt_w": mt_w,
        "njet": njet,
        "nbjet": ak.to_numpy(ak.sum(jet_btag > 0.5, axis=1)).astype(np.int32),
        "ht": ht,
        "jet1_pt": ak.to_numpy(sorted_pt[:, 0]),
        "jet2_pt": ak.to_numpy(sorted_pt[:, 1]),
        "jet1_eta": ak.to_numpy(jet_eta[:, 0]),
        "btag_max": ak.to_numpy(ak.max(jet_btag, axis=1)),
        "btag_2nd": ak.to_numpy(ak.sort(jet_btag, ascending=False)[:, 1]),
        "mbb": mbb,
        "dr_bb": dr_bb,
        "pt_bb": pt_bb,
        "deta_bb": np.abs(rng.normal(0.0, 0.9 if signal else 1.4, n)),
        "m_lep_bb": np.sqrt(mbb**2 + 2 * lep_pt * pt_bb * (1 + rng.uniform(0, 1, n))),
        "centrality": ht / (ht + ak.to_numpy(ak.sum(jet_pt * np.abs(jet_eta), axis=1)) + 1.0),
        "jet_pt": jet_pt,
        "jet_eta": jet_eta,
        "jet_btag": jet_btag,
    }
    out = {
        k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v)
        for k, v in columns.items()
    }
    out["label"] = np.full(n, 1 if signal else 0, dtype=np.int32)
    out["weight"] = np.full(n, 0.05 if signal else 1.0, dtype=np.float32) * rng.uniform(
        0.8, 1.2, n
    ).astype(np.float32)
    return out


def write_sample(
    folder: Path,
    events: int,
    files_per_class: int = 4,
    seed: int = 1,
    chunk: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> SampleFiles:
    """Write ``events`` events, half signal and half background, unless already there.

    Each file is written under a temporary name and renamed when complete, so an
    interrupted run never leaves a truncated file that a later run would reuse.
    ``progress`` is called with the number of events just written.
    """
    import uproot  # heavy: only when writing

    folder.mkdir(parents=True, exist_ok=True)
    per_file = max(1, events // (2 * files_per_class))
    written: dict[bool, list[Path]] = {True: [], False: []}
    for signal in (True, False):
        for index in range(files_per_class):
            name = f"{'signal' if signal else 'background'}_{index:03d}.root"
            path = folder / name
            written[signal].append(path)
            if path.exists():
                if progress:
                    progress(per_file)
                continue
            rng = np.random.default_rng([seed, int(signal), index])
            with (
                replacing(path) as partial,
                uproot.recreate(partial, compression=uproot.ZLIB(1)) as out,
            ):
                tree = None
                for start in range(0, per_file, chunk):
                    batch = generate_events(min(chunk, per_file - start), signal, rng)
                    if tree is None:
                        tree = out.mktree("events", {k: _branch_type(v) for k, v in batch.items()})
                    tree.extend(batch)
                    if progress:
                        progress(len(batch["label"]))
    return SampleFiles(signal=tuple(written[True]), background=tuple(written[False]))


def _branch_type(column: np.ndarray | ak.Array) -> object:
    if isinstance(column, np.ndarray):
        return column.dtype
    return "var * float32"
