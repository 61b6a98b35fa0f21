"""The study's page: parameters as people write them, importances only when they mean
something, one timeline row per slot named by what it is, links that resolve."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from batchml.hpo.page import Figure, Report, Section, TableData
from batchml.hpo.report import (
    format_distribution,
    format_value,
    parameters_table,
    study_figures,
)
from batchml.hpo.timeline import ran, slot_rows, timeline_figure

SPACE = {
    "learning_rate": FloatDistribution(1e-4, 3e-2, log=True),
    "width": CategoricalDistribution([16, 32, 64]),
    "depth": IntDistribution(1, 4),
    "activation": CategoricalDistribution(["relu", "gelu"]),
}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.00032123456, "3.2e-4"), (1e-4, "1e-4"), (-3.25e-5, "-3.2e-5"), (0.15, "0.15"),
        (0.123456, "0.12"), (0.0, "0"), (1.0, "1"), (12345.6, "12000"), (2.5e6, "2.5e6"),
        (128, "128"), (1024, "1024"), ("relu", "relu"), (True, "True"), (None, "None"),
    ],
)  # fmt: skip
def test_parameters_read_as_people_write_them(value: object, text: str) -> None:
    assert format_value(value) == text


def test_the_searched_range_is_written_the_same_way() -> None:
    assert format_distribution(SPACE["learning_rate"]) == "1e-4 to 0.03, log"
    assert format_distribution(SPACE["width"]) == "16, 32, 64"
    assert format_distribution(SPACE["depth"]) == "1 to 4"
    assert format_distribution(FloatDistribution(0.0, 0.5, step=0.05)) == "0 to 0.5, step 0.05"
    table = parameters_table("best", {"learning_rate": 0.00032123, "width": 32,
                                      "activation": "gelu"}, SPACE)  # fmt: skip
    assert table.header == ("parameter", "value", "searched")
    assert [tuple(r) for r in table.rows] == [
        ("learning_rate", "3.2e-4", "1e-4 to 0.03, log"),
        ("width", "32", "16, 32, 64"),
        ("activation", "gelu", "relu, gelu"),
    ]


def _study(complete: int, varied: tuple[str, ...]) -> optuna.Study:
    """A study of ``complete`` finished trials where only ``varied`` parameters change."""
    study = optuna.create_study()
    for i in range(complete):
        params = {"learning_rate": 1e-3 * (1 + i if "learning_rate" in varied else 1),
                  "depth": 1 + i % 4 if "depth" in varied else 2, "width": 32}  # fmt: skip
        space = {name: SPACE[name] for name in params}
        study.add_trial(create_trial(params=params, distributions=space, value=float(i % 5)))
    study.add_trial(create_trial(state=TrialState.PRUNED, params={}, distributions={}))
    return study


def _importances(blocks: list[object]) -> list[object]:
    return [b for b in blocks if (isinstance(b, Figure) and "importances" in b.caption)
            or (isinstance(b, str) and "importances" in b)]  # fmt: skip


def test_importances_are_drawn_from_ten_completed_trials_with_two_parameters_varied() -> None:
    (drawn,) = _importances(study_figures(_study(10, ("learning_rate", "depth"))))
    assert isinstance(drawn, Figure) and drawn.png.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("complete", "varied", "said"),
    [(9, ("learning_rate", "depth"), "9 completed trial(s) with 2 parameter(s) varied"),
     (12, ("learning_rate",), "12 completed trial(s) with 1 parameter(s) varied")],
)  # fmt: skip
def test_importances_are_left_out_with_the_reason_when_trials_are_too_few(
    complete: int, varied: tuple[str, ...], said: str
) -> None:
    (note,) = _importances(study_figures(_study(complete, varied)))
    assert isinstance(note, str) and said in note and "at least 10 completed trials" in note


def _placed(study: optuna.Study, attrs: dict[str, object], start: float, seconds: float) -> None:
    begin = datetime(2026, 1, 1) + timedelta(seconds=start)
    trial = create_trial(value=1.0, user_attrs={"batchml.started": begin.timestamp(), **attrs})
    trial.datetime_start, trial.datetime_complete = begin, begin + timedelta(seconds=seconds)
    study.add_trial(trial)


def test_a_cpu_run_has_one_row_per_cpu_slot_of_each_worker() -> None:
    study = optuna.create_study()
    host = {"batchml.host": "node7.cern.ch", "batchml.devices": ""}
    a, b = {"batchml.worker": "tcp://10.0.0.7:4001"}, {"batchml.worker": "tcp://10.0.0.7:4002"}
    _placed(study, {**host, **b, "batchml.slot": 0}, start=1, seconds=5)  # worker b starts later
    _placed(study, {**host, **a, "batchml.slot": 0}, start=0, seconds=5)
    _placed(study, {**host, **a, "batchml.slot": 1}, start=0.5, seconds=5)  # same worker, at once
    _placed(study, {**host, **a, "batchml.slot": 0}, start=4.9, seconds=5)  # the first slot again
    rows = slot_rows(ran(study))
    assert rows == {
        0: "node7 · worker 2 · CPU slot 1",
        1: "node7 · worker 1 · CPU slot 1",
        2: "node7 · worker 1 · CPU slot 2",
        3: "node7 · worker 1 · CPU slot 1",
    }
    figure = timeline_figure(study)
    assert figure is not None and "one row per CPU slot" in figure.caption


def test_a_gpu_run_names_each_row_by_its_gpu_ids() -> None:
    study = optuna.create_study()
    for number, (worker, devices) in enumerate([("w1", "0,1"), ("w1", "2,3"), ("w2", "0,1")]):
        _placed(study, {"batchml.host": "gpu01", "batchml.worker": worker,
                        "batchml.devices": devices, "batchml.slot": number % 2}, number, 3)
    assert list(slot_rows(ran(study)).values()) == [
        "gpu01 · worker 1 · GPU 0,1", "gpu01 · worker 1 · GPU 2,3", "gpu01 · worker 2 · GPU 0,1"
    ]  # fmt: skip
    figure = timeline_figure(study)
    assert figure is not None and "one row per GPU slot" in figure.caption


def test_every_table_has_headers_and_paths_are_links_from_the_pages_folder(
    tmp_path: Path,
) -> None:
    inside, outside = tmp_path / "out" / "my data" / "a.root", tmp_path / "elsewhere.json"
    report = Report("t", facts=[("where", inside)], sections=[Section("Inputs", [
        TableData("files", ("file", "MB"), [(inside, "1.0"), (outside, "2.0")]),
        "a paragraph <with> markup",
    ])])  # fmt: skip
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    report.write(page)
    text = page.read_text()
    assert re.findall(r"href='([^'#]+)'", text) == [
        "my%20data/a.root", "my%20data/a.root", outside.as_uri()
    ]  # fmt: skip
    tables = re.findall(r"<table[^>]*>.*?</table>", text)
    assert len(tables) == 2 and all("<th>" in t for t in tables)
    assert "<th>file</th><th>MB</th>" in text and "a paragraph &lt;with&gt; markup" in text
    assert "<a href='#inputs'>Inputs</a>" in text and "<section id='inputs'>" in text
