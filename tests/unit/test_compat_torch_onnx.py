"""batchml._compat.torch_onnx: torch's exporter logs and warnings that the packager silences.

Checked on the torch that ``make venv`` installs. When a test here fails, a
torch release moved a logger or changed a warning: find where it went, update
the module, then add the version to CHECKED_ON.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import warnings
from importlib.metadata import version

import pytest
import torch

from batchml._compat.torch_onnx import (
    CHECKED_ON,
    LEAFSPEC_WARNING,
    QUIET_LOGGERS,
    quiet_export,
)


def test_the_installed_torch_is_one_it_was_checked_on() -> None:
    installed = version("torch").partition("+")[0]  # 2.13.0+cpu: the local build tag aside
    assert installed in CHECKED_ON, (
        f"torch {installed} is not among the versions batchml._compat.torch_onnx was checked on "
        f"({', '.join(CHECKED_ON)}): run this file, then add {installed} to CHECKED_ON"
    )


@pytest.mark.parametrize("name", QUIET_LOGGERS)
def test_each_quietened_logger_is_a_module_that_exists(name: str) -> None:
    """A logger is named after its module: a moved module logs again, under its new name."""
    assert importlib.util.find_spec(name) is not None, (
        f"torch {torch.__version__}: {name} no longer exists, so its log lines are no longer "
        "silenced; find the module that logs them now and put it in QUIET_LOGGERS"
    )


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _export(quiet: bool) -> tuple[list[str], list[logging.LogRecord]]:
    """The warnings raised and the quietened loggers' records of one dynamo export."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU()).eval()
    program = torch.export.export(
        model, (torch.randn(2, 3),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    handler = _Records()
    for name in QUIET_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if quiet:
                with quiet_export():
                    torch.onnx.export(program, dynamo=True, opset_version=18, verbose=False)
            else:
                torch.onnx.export(program, dynamo=True, opset_version=18, verbose=False)
    finally:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).removeHandler(handler)
    return [str(w.message) for w in caught], handler.records


def test_what_an_export_says_is_still_said_and_quiet_export_silences_it() -> None:
    loud, logged = _export(quiet=False)
    assert any(re.match(LEAFSPEC_WARNING, m) for m in loud), (
        f"torch {torch.__version__} no longer warns about LeafSpec during an export: "
        "drop LEAFSPEC_WARNING from batchml._compat.torch_onnx"
    )
    if importlib.util.find_spec("torchvision") is None:  # it logs the operators it skips
        assert {r.name for r in logged} == {QUIET_LOGGERS[0]}, (
            f"torch {torch.__version__} no longer logs skipped torchvision operators through "
            f"{QUIET_LOGGERS[0]}: find the logger that does, or drop it from QUIET_LOGGERS"
        )
    quiet, logged = _export(quiet=True)
    assert not [m for m in quiet if re.match(LEAFSPEC_WARNING, m)]
    assert [r for r in logged if r.levelno < logging.ERROR] == []
