"""Files as they come: each damaged, foreign or unusual file gets its own one-line error and hint,
through the library and through ``batchml data``; NanoAOD and RNTuple sizes are real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot

from batchml.cli import main
from batchml.data import (
    DataFileNotFoundError,
    RootDataset,
    TreeNotFoundError,
    UnsupportedBranchError,
)
from batchml.data.errors import UnreadableFileError
from batchml.errors import BatchmlError, InvalidValue
from tests.unit.nano_files import nano_events, write_nano

SKHEP = Path(__file__).resolve().parents[1] / "data" / "skhep"
NANOAOD = SKHEP / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
BITSET = SKHEP / "uproot-mc10events.root"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files")


@pytest.fixture(scope="module")
def nano(folder: Path) -> Path:
    return write_nano(folder / "nano.root", nano_events(400))


def corrupt_basket(source: Path, target: Path, branch: str, basket: int) -> Path:
    """A copy of ``source`` whose ``basket``-th basket of ``branch`` does not inflate."""
    data = bytearray(source.read_bytes())
    with uproot.open(source) as file:
        found = file["Events"][branch]
        start = int(found.member("fBasketSeek")[basket]) + found.basket_key(basket).fKeylen + 9
    for i in range(start + 4, start + 60):  # (past the 9-byte compression header)
        data[i] ^= 0x5A
    target.write_bytes(bytes(data))
    return target


def one_error(**options: Any) -> BatchmlError:
    with pytest.raises(BatchmlError) as caught:
        RootDataset(tree="Events", features=["HT", "nJet"], prefetch=None, **options)
    error = caught.value
    assert "\n" not in error.message and error.hint and "\n" not in error.hint
    return error


def test_a_damaged_first_basket_is_named_when_the_dataset_is_built(
    nano: Path, folder: Path
) -> None:
    damaged = corrupt_basket(nano, folder / "damaged.root", "nJet", 0)
    error = one_error(files=str(damaged))
    assert isinstance(error, UnreadableFileError) and error.exit_code == 2
    assert "does not decompress" in error.message and "nJet" in error.message
    assert "copy it again" in (error.hint or "")


def test_a_branch_uproot_cannot_read_is_named_with_its_type() -> None:
    with pytest.raises(UnsupportedBranchError) as caught:
        RootDataset(str(BITSET), "Events", features=["Info/runNum", "Info/triggerBits"])
    assert "'Info/triggerBits'" in caught.value.message
    assert "std::bitset<256>" in caught.value.message
    assert "leave it out" in (caught.value.hint or "")


def test_a_folder_a_foreign_file_and_a_truncated_file_each_say_what_they_are(
    nano: Path, folder: Path
) -> None:
    (folder / "run1.root").mkdir()
    error = one_error(files=str(folder / "run1.root"))
    assert isinstance(error, UnreadableFileError) and "is a folder" in error.message
    assert f"{folder / 'run1.root'}/*.root" in (error.hint or "")

    short, long = folder / "short.root", folder / "long.root"
    short.write_text("hello")
    long.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 400)
    for foreign, start in ((short, b"hell"), (long, b"PK\x03\x04")):
        error = one_error(files=str(foreign))
        assert isinstance(error, UnreadableFileError)
        assert f"is not a ROOT file: it starts with {start!r}" in error.message

    data = nano.read_bytes()
    truncated = folder / "truncated.root"
    truncated.write_bytes(data[: len(data) // 3])
    error = one_error(files=str(truncated))
    assert isinstance(error, UnreadableFileError)
    assert f"is truncated: {len(data) // 3:,} bytes where its ROOT header says {len(data):,}" in (
        error.message
    )


def test_a_missing_local_file_gets_a_local_hint(folder: Path) -> None:
    error = one_error(files=str(folder / "nope.root"))
    assert isinstance(error, DataFileNotFoundError)
    assert error.hint == f"check the name: ls {folder}" and "//" not in error.hint
    error = one_error(files=str(folder / "no-such-folder" / "a.root"))
    assert "the folder" in (error.hint or "") and "does not exist" in (error.hint or "")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"features": []}, "no feature columns"),
        ({"features": "HT"}, "write features=['HT']"),
        ({"features": ["HT", "HT"]}, "more than once"),
        ({"features": ["HT", 3]}, "branch name 3"),
        ({"jagged": {"Jet_pt": 0}}, "at least 1"),
        ({"jagged": {"Jet_pt": -1}}, "at least 1"),
        ({"jagged": {"Jet_pt": 2.5}}, "at least 1"),
        ({"jagged": ["Jet_pt"]}, "not a mapping"),
        ({"shuffle_buffer": -1}, "neither a number of rows nor a size"),
        ({"shuffle_buffer": "lots"}, "is not a size"),
    ],
)
def test_bad_options_are_refused_at_construction_one_message_each(
    nano: Path, options: dict[str, Any], words: str
) -> None:
    settings = {"features": ["HT"], **options}
    with pytest.raises(InvalidValue) as caught:
        RootDataset(str(nano), "Events", prefetch=None, **settings)  # type: ignore[arg-type]
    assert words in str(caught.value) and caught.value.hint


def test_fixed_size_arrays_are_features_of_their_stated_width(nano: Path) -> None:
    with pytest.raises(UnsupportedBranchError, match=r"jagged=\{'vtx': 3\}"):
        RootDataset(str(nano), "Events", features=["vtx"], prefetch=None)
    ds = RootDataset(
        str(nano), "Events", features=["HT"], jagged={"vtx": 2}, prefetch=None, output="numpy"
    )
    assert ds.columns == ("HT", "vtx[0]", "vtx[1]")
    batches = list(ds)
    entries = np.concatenate([b.entry for b in batches])
    features = np.concatenate([b.features for b in batches])
    vtx = uproot.open(nano)["Events"]["vtx"].array(library="np")
    np.testing.assert_array_equal(features[:, 1:], vtx[entries, :2])


def test_inspect_gives_nanoaod_sizes_from_embedded_baskets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["data", "inspect", str(NANOAOD)]) == 0
    out = capsys.readouterr().out
    assert "Events (TTree): 200 entries" in out
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["nJet"])
    assert row[2:] == ["800*", "800*"]  # 200 int32 counts, in the tree's metadata
    assert "kept in the tree's metadata" in out


def test_inspect_gives_rntuple_field_sizes(
    nano: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = nano_events(400)
    path = write_nano(folder / "nano-rntuple.root", events, rntuple=True)
    assert main(["data", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Events (RNTuple): 400 entries" in out
    rows = {line.split()[0]: line.split()[-2:] for line in out.splitlines()[2:]}
    assert rows["i16"][1] == "800" and rows["MET"][1] == "3,200" and rows["vtx"][1] == "4,800"
    jets = len(np.concatenate(events["Jet_pt"].to_list()))  # type: ignore[attr-defined]
    assert rows["Jet_pt"][1] == f"{400 * 8 + jets * 4:,}"  # offsets (64-bit) and values
    assert all(int(stored.replace(",", "")) > 0 for stored, _ in rows.values())


def test_inspect_of_a_file_without_trees_says_what_it_holds_and_exits_2(
    nano: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    histograms = folder / "histograms.root"
    with uproot.recreate(histograms) as out:
        out["pt"] = np.histogram(np.arange(10.0), bins=5)
    assert main(["data", "inspect", str(nano), str(histograms)]) == 2
    captured = capsys.readouterr()
    assert "Events (TTree): 400 entries" in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 2 and "no TTree or RNTuple in" in lines[0] and "TH1D 'pt'" in lines[0]


def test_a_missing_branch_of_a_large_tree_suggests_close_names() -> None:
    with pytest.raises(TreeNotFoundError):
        RootDataset(str(NANOAOD), "events", features=["nJet"])
    with pytest.raises(BatchmlError) as caught:
        RootDataset(str(NANOAOD), "Events", features=["Jet_Pt"])
    assert "Jet_pt" in (caught.value.hint or "") and "all 947" in (caught.value.hint or "")


@pytest.mark.parametrize("step_size", [70, "3 kB"])
def test_an_rntuple_gives_the_batches_its_ttree_gives(folder: Path, step_size: int | str) -> None:
    """Steps that cut clusters (baskets of 50 entries) and fields read in a pool of 2."""
    events = nano_events(1000, seed=4)
    paths = {
        kind: write_nano(folder / f"same-{kind}.root", events, rntuple=kind == "rntuple")
        for kind in ("ttree", "rntuple")
    }
    batches = {}
    for kind, path in paths.items():
        ds = RootDataset(
            str(path), "Events", features=["HT", "MET", "u16", "flag"], jagged={"Jet_pt": 3},
            target="nMuon", cut="len(Jet_pt) < 4", step_size=step_size, range_entries=330,
            batch_size=64, decompression_threads=2, seed=9, prefetch=None, output="numpy",
        )  # fmt: skip
        ds.set_epoch(1)
        batches[kind] = list(ds)
        assert ds.stats.bytes_read > 0
    assert len(batches["ttree"]) == len(batches["rntuple"]) > 5
    for tree, ntuple in zip(batches["ttree"], batches["rntuple"], strict=True):
        for a, b in zip(tree, ntuple, strict=True):
            np.testing.assert_array_equal(a, b)
