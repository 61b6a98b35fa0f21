"""torch's exporters, quiet about what batchml's packager handles itself.

During a dynamo export torch logs, through loggers named after its private
modules, the torchvision operators it cannot register (absent, and not
needed: ``_registration``) and the opset it raised and failed to convert back
(``_compat``; batchml/package/export.py reads the file's opset and lowers it
itself), and onnxscript's version converter logs the same failure. And
``torch.export`` deep-copies tree specs, whose constructor raises a
FutureWarning that ``LeafSpec`` is deprecated; nothing in batchml uses
LeafSpec. ``quiet_export`` silences exactly these, below ERROR, and only
around calls into torch. tests/unit/test_compat_torch_onnx.py fails on a
torch where a logger's module moved or the warning changed.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

CHECKED_ON = ("2.13.0",)
QUIET_LOGGERS = (
    "torch.onnx._internal.exporter._registration",
    "torch.onnx._internal.exporter._compat",
    "onnxscript.version_converter",
)
LEAFSPEC_WARNING = r".*isinstance\(treespec, LeafSpec\)"


class quiet_export(warnings.catch_warnings):
    """A context in which torch's LeafSpec FutureWarning and the log lines of
    ``QUIET_LOGGERS`` below ERROR are silenced; both are restored on leaving."""

    def __enter__(self) -> None:
        super().__enter__()
        warnings.filterwarnings("ignore", message=LEAFSPEC_WARNING, category=FutureWarning)
        self._levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)

    def __exit__(self, *exc: Any) -> None:
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        super().__exit__(*exc)
