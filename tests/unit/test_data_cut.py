"""Cuts select what Python says they select, entry by entry, on every branch type of real files.

Each cut runs through RootStream, given its typed options, on a NanoAOD-like file
written with uproot; the expected entries come from Python itself on the same
events (``eval`` of the same text on each entry's values, or a plain Python
function for the reductions of lists), so ``not nMuon`` must keep exactly the
events without a muon.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from batchml.data import ReadOptions, RootStream, Selection, StreamOptions
from batchml.errors import InvalidValue
from tests.unit.nano_files import INTEGERS, nano_events, write_nano

N = 600
EVENTS = nano_events(N)
BRANCHES = (*INTEGERS, "flag", "HT", "MET", "nMuon")
# every operator, on one branch ``b`` (integers, booleans, float32, float64)
OPERATORS = (
    "not {b}",
    "{b} and nJet",
    "{b} or nMuon",
    "not {b} or not nJet and HT > 100",
    "-{b} < 0",
    "+{b} - 2 > 0",
    "{b} * 2 >= 3",
    "{b} + 1 == 2",
    "{b} // 2 != 0",
    "{b} % 2 == 1",
    "{b} ** 2 > 3",
    "{b} / 2 <= 0.5",
    "0 <= {b} < 2",
    "abs({b}) > 1",
    "({b} and 7) > 5",
    "({b} or HT) > 30.1",
)


def python_values(i: int) -> dict[str, Any]:
    """Entry ``i`` as Python numbers and lists (float32 values as the floats they are)."""
    return {
        name: (ak.to_list(column[i]) if isinstance(column, ak.Array) else column[i].tolist())
        for name, column in EVENTS.items()
    }


ROWS = [python_values(i) for i in range(N)]


def _min(values: list[float]) -> float:
    return min(values) if values else math.nan


def _max(values: list[float]) -> float:
    return max(values) if values else math.nan


REDUCTIONS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("any(Jet_pt > 30)", lambda r: any(pt > 30 for pt in r["Jet_pt"])),
    ("not any(Jet_pt > 30)", lambda r: not any(pt > 30 for pt in r["Jet_pt"])),
    ("all(Jet_pt > 10)", lambda r: all(pt > 10 for pt in r["Jet_pt"])),
    ("sum(Jet_pt) > 50", lambda r: sum(r["Jet_pt"]) > 50),
    ("len(Jet_pt) >= 2 and nJet == len(Jet_pt)", lambda r: len(r["Jet_pt"]) >= 2),
    ("min(Jet_pt) < 20", lambda r: _min(r["Jet_pt"]) < 20),
    ("not max(Jet_pt) > 60", lambda r: not _max(r["Jet_pt"]) > 60),
    ("any(Jet_eta)", lambda r: any(r["Jet_eta"])),
    (
        "any(Jet_pt > 30 and abs(Jet_eta) < 2.4)",
        lambda r: any(
            p > 30 and abs(e) < 2.4 for p, e in zip(r["Jet_pt"], r["Jet_eta"], strict=True)
        ),
    ),
    ("sum(Jet_pt > 0.2 * HT) >= 1", lambda r: sum(p > 0.2 * r["HT"] for p in r["Jet_pt"]) >= 1),
    ("sum(vtx > 0) >= 2", lambda r: sum(v > 0 for v in r["vtx"]) >= 2),
    ("max(vtx) > 1 or not nMuon", lambda r: max(r["vtx"]) > 1 or not r["nMuon"]),
    ("all(not vtx > 0.5)", lambda r: all(not v > 0.5 for v in r["vtx"])),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cuts")
    return {
        "ttree": write_nano(folder / "ttree.root", EVENTS),
        "rntuple": write_nano(folder / "rntuple.root", EVENTS, rntuple=True),
    }


def stream(path: Path, selection: Selection) -> RootStream:
    """The tree Events of ``path``, read in this thread (no read-ahead)."""
    return RootStream(
        StreamOptions(
            files=str(path), tree="Events", selection=selection, reading=ReadOptions(prefetch=None)
        )
    )


def kept(path: Path, cut: str) -> list[int]:
    tables = stream(path, Selection(features=["HT"], cut=cut)).batches(0)
    return sorted(int(e) for table in tables for e in table["entry"])


def test_not_keeps_only_the_events_without_a_muon(files: dict[str, Path]) -> None:
    no_muon = np.flatnonzero(EVENTS["nMuon"] == 0).tolist()  # type: ignore[operator]
    assert 0 < len(no_muon) < N
    assert kept(files["ttree"], "not nMuon") == no_muon
    both = np.flatnonzero((EVENTS["nJet"] != 0) & (EVENTS["nMuon"] != 0)).tolist()  # type: ignore[operator]
    assert kept(files["ttree"], "nJet and nMuon") == both


@pytest.mark.parametrize("branch", BRANCHES)
def test_every_operator_has_pythons_meaning_on_every_branch_type(
    files: dict[str, Path], branch: str
) -> None:
    for template in OPERATORS:
        cut = template.format(b=branch)
        expected = [i for i, row in enumerate(ROWS) if eval(cut, {"abs": abs}, row)]
        assert kept(files["ttree"], cut) == expected, cut


@pytest.mark.parametrize("kind", ["ttree", "rntuple"])
@pytest.mark.parametrize(("cut", "python"), REDUCTIONS, ids=[c for c, _ in REDUCTIONS])
def test_reductions_of_jagged_and_fixed_size_branches(
    files: dict[str, Path], kind: str, cut: str, python: Callable[[dict[str, Any]], Any]
) -> None:
    expected = [i for i, row in enumerate(ROWS) if python(row)]
    assert 0 < len(expected) < N, cut  # (a cut that keeps all or nothing would prove little)
    assert kept(files[kind], cut) == expected


def test_a_jagged_branch_may_be_padded_and_cut_on_in_one_dataset(files: dict[str, Path]) -> None:
    cut = "len(Jet_pt) >= 1 and max(Jet_pt) > 40"
    selection = Selection(features=["HT"], jagged={"Jet_pt": 2}, cut=cut)
    tables = list(stream(files["ttree"], selection).batches(0))
    entries = np.concatenate([t["entry"] for t in tables])
    features = np.concatenate([t["features"] for t in tables])
    expected = [i for i, r in enumerate(ROWS) if r["Jet_pt"] and max(r["Jet_pt"]) > 40]
    assert sorted(entries.tolist()) == expected
    first = {int(e): f for e, f in zip(entries, features, strict=True)}
    for i in expected[:20]:
        jets = ROWS[i]["Jet_pt"][:2] + [0.0] * (2 - len(ROWS[i]["Jet_pt"][:2]))
        np.testing.assert_array_equal(first[i][1:], np.float32(jets))


@pytest.mark.parametrize(
    ("cut", "words"),
    [
        ("Jet_pt > 30", "gives a list per entry"),
        ("nJet > 1 and Jet_eta < 2", "'Jet_eta'"),
        ("sum(HT) > 3", "sum() reduces a list per entry"),
        ("nJet & 1", "bitwise"),
        ("~flag", "bitwise"),
        ("nJet | nMuon", "bitwise"),
        ("nJet in (1, 2)", "other than"),
        ("nJet is 1", "other than"),
        ("HT.real > 1", "may not use"),
        ("vtx[0] > 1", "may not use"),
        ("HT > 'a'", "not a number"),
        ("open(HT)", "functions"),
        ("max(HT, MET) > 1", "functions"),
        ("HT >", "not an expression"),
        ("(lambda: 1)()", "functions"),
    ],
)
def test_a_cut_outside_the_language_or_giving_lists_is_refused_before_reading(
    files: dict[str, Path], cut: str, words: str
) -> None:
    with pytest.raises(InvalidValue) as caught:
        stream(files["ttree"], Selection(features=["HT"], cut=cut))
    assert words in str(caught.value) and caught.value.hint
    assert "\n" not in caught.value.message
