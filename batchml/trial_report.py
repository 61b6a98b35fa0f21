"""What a training script run as a command trial calls to report: nothing else to import.

A command trial (batchml.hpo.command) runs a script in its own process, maybe
as several torchrun ranks, on a worker whose study the script cannot reach.
So the script appends JSON lines to a file the trial names in
``$BATCHML_TRIAL_REPORT`` and the trial, which watches the file, passes them
on to Optuna. This module imports only the standard library, so a script pays
nothing for it and runs unchanged outside batchml (where it does nothing).
"""

from __future__ import annotations

import json
import os

__all__ = [
    "REPORT_ENV",
    "report",
]

REPORT_ENV = "BATCHML_TRIAL_REPORT"


def report(value: float, step: int | None = None) -> None:
    """An intermediate value at ``step`` (seen by the pruner), or without a step the result.

    Only rank 0 of a torchrun writes; outside a batchml trial nothing happens.
    """
    path = os.environ.get(REPORT_ENV)
    if not path or os.environ.get("RANK", "0") != "0":
        return
    with open(path, "a", encoding="utf-8") as out:  # one short append: whole lines
        out.write(json.dumps({"value": float(value), "step": step}) + "\n")
