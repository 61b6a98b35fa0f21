"""distributed's INFO log on a pool driver's stderr, so a failed driver says what happened.

dask-jobqueue silences the StreamHandlers of the ``distributed`` logger to ERROR
while a cluster runs; this handler is not a StreamHandler, so it keeps INFO.
run_in_pool copies this file beside every driver.
"""

from __future__ import annotations

import logging
import sys


class _Stderr(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


def info_to_stderr() -> None:
    handler = _Stderr(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("distributed")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    logging.getLogger("distributed.client").setLevel(logging.INFO)
