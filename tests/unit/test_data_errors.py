"""Bad input gives one batchml error naming the file and branch, never an uproot traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

from batchml.data import (
    BranchNotFoundError,
    DataFileNotFoundError,
    DataTimeoutError,
    Retry,
    RootDataset,
    TreeNotFoundError,
    UnsupportedBranchError,
    source,
)
from batchml.errors import InvalidValue


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree of 500 entries (flat and jagged), RNTuples of strings and of lists of lists."""
    path = tmp_path_factory.mktemp("bad") / "events.root"
    n = 500
    with uproot.recreate(path) as out:
        tree = out.mktree("events", {"pt": np.float32, "jets": "var * float32"})
        tree.extend({"pt": np.arange(n, dtype=np.float32), "jets": ak.Array([[1.0, 2.0]] * n)})
        out["strings"] = {"name": ak.Array(["a", "bb"])}
        out["nested"] = {"deep": ak.Array([[[1.0], [2.0, 3.0]]])}  # an RNTuple: TTrees cannot
    return path


def test_missing_file_and_empty_glob_name_the_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.root")
    with pytest.raises(DataFileNotFoundError, match=r"nope\.root.*branches pt"):
        RootDataset(missing, features=["pt"])
    with pytest.raises(DataFileNotFoundError, match=r"no file matches .*\*\.root"):
        RootDataset(str(tmp_path / "*.root"), features=["pt"])


def test_missing_tree_lists_the_trees_there(events: Path) -> None:
    with pytest.raises(TreeNotFoundError) as caught:
        RootDataset(str(events), "Events", features=["pt"])
    assert str(events) in str(caught.value) and "'Events'" in str(caught.value)
    assert "events" in (caught.value.hint or "")


def test_missing_branch_names_branch_url_and_alternatives(events: Path) -> None:
    with pytest.raises(BranchNotFoundError) as caught:
        RootDataset(str(events), features=["pt"], target="label")
    assert "'label'" in str(caught.value) and str(events) in str(caught.value)
    assert "jets, pt" in (caught.value.hint or "")
    with pytest.raises(BranchNotFoundError, match="'ht'"):
        RootDataset(str(events), features=["pt"], cut="ht > 3")


@pytest.mark.parametrize(
    ("tree", "branch", "jagged", "words"),
    [
        ("strings", "name", None, "string"),
        ("nested", "deep", {"deep": 3}, "nested"),
        ("events", "jets", None, "jagged={'jets': 10}"),
        ("events", "pt", {"pt": 3}, "list it in features"),
    ],
)
def test_unsupported_branch_kind_names_branch_and_fix(
    events: Path, tree: str, branch: str, jagged: dict[str, int] | None, words: str
) -> None:
    features = [] if jagged else [branch]
    with pytest.raises(UnsupportedBranchError) as caught:
        RootDataset(str(events), tree, features=features, jagged=jagged)
    assert f"'{branch}'" in str(caught.value) and str(events) in str(caught.value)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        {"step_size": "fast"},
        {"step_size": 0},
        {"split": ("test", 0.5)},
        {"batch_size": 0},
        {"cut": "__import__('os')"},
        {"cut": "pt >"},
    ],
)
def test_bad_options_are_refused_with_a_hint(events: Path, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue) as caught:
        RootDataset(str(events), features=["pt"], **options)
    assert caught.value.hint


class FlakyTree:
    """A real tree whose iterate() times out after its first chunk, once."""

    failed = False

    def __init__(self, tree: Any) -> None:
        self.tree, self.file = tree, tree.file

    def iterate(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for i, item in enumerate(self.tree.iterate(*args, **kwargs)):
            if i == 1 and not FlakyTree.failed:
                FlakyTree.failed = True
                raise TimeoutError("simulated lost connection")
            yield item


def test_read_resumes_at_the_entry_where_it_stopped(
    events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = source.open_tree

    @contextmanager
    def flaky_open(*args: Any, **kwargs: Any) -> Iterator[FlakyTree]:
        with real_open(*args, **kwargs) as tree:
            yield FlakyTree(tree)

    monkeypatch.setattr(source, "open_tree", flaky_open)
    fast = Retry(attempts=3, first_delay=0.01)
    chunks = list(
        source.read_range(str(events), "events", ["pt"], 10, 460, step_size=100, retry=fast)
    )
    assert FlakyTree.failed
    read = np.concatenate([ak.to_numpy(c.arrays["pt"]) for c in chunks])
    np.testing.assert_array_equal(read, np.arange(10, 460, dtype=np.float32))

    FlakyTree.failed = False
    with pytest.raises(DataTimeoutError, match=f"{events}.*branches pt"):
        list(
            source.read_range(
                str(events), "events", ["pt"], 0, 500, step_size=100, retry=Retry(attempts=1)
            )
        )


def test_open_files_are_reused_between_ranges_and_reopened_after_a_failure(
    events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = source.open_tree
    opened: list[str] = []

    @contextmanager
    def counting_open(url: str, *args: Any, **kwargs: Any) -> Iterator[FlakyTree]:
        opened.append(url)
        with real_open(url, *args, **kwargs) as tree:
            yield FlakyTree(tree)

    monkeypatch.setattr(source, "open_tree", counting_open)
    fast = Retry(attempts=3, first_delay=0.01)

    def read(trees: source.OpenTrees, start: int, stop: int) -> np.ndarray:
        chunks = source.read_range(
            str(events), "events", ["pt"], start, stop, step_size=100, retry=fast, trees=trees
        )
        return np.concatenate([ak.to_numpy(c.arrays["pt"]) for c in chunks])

    FlakyTree.failed = True  # no failure in the first two ranges
    with source.OpenTrees("events", ["pt"]) as trees:
        read_once = np.concatenate([read(trees, 300, 500), read(trees, 0, 300)])
        assert opened == [str(events)]
        FlakyTree.failed = False  # the next read loses its connection once
        read_again = read(trees, 0, 500)
        assert FlakyTree.failed and opened == [str(events)] * 2
    expected = np.arange(500, dtype=np.float32)
    np.testing.assert_array_equal(np.sort(read_once), expected)
    np.testing.assert_array_equal(read_again, expected)
