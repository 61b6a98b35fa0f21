"""The live line a user watches during a search: done/total, running, failed, best so far."""

from __future__ import annotations

from types import TracebackType

import optuna
from optuna.trial import TrialState
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from batchml.hpo.tally import Tally


class StudyProgress:
    """A rich progress bar fed from the driver's counts of the study (tally.py), which start
    from the storage: a resumed run shows the trials of the runs before."""

    def __init__(
        self, study: optuna.Study, total: int, tally: Tally, *, enabled: bool = True
    ) -> None:
        self.study = study
        self.total = total
        self.tally = tally
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            disable=not enabled,
        )
        self._task = self._bar.add_task(study.study_name, total=total, detail="")

    def __enter__(self) -> StudyProgress:
        self._bar.__enter__()
        self.update(running=0, workers=0)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.__exit__(kind, exc, tb)

    def update(self, *, running: int, workers: int, note: str = "") -> None:
        """Redraw from the counts as they are now; ``note``: the sites that are down."""
        states = self.tally.states
        best = "" if self.tally.best is None else f"best {self.tally.best:.5g}"
        detail = (
            f"workers {workers}  running {running}  pruned {states[TrialState.PRUNED]}  "
            f"failed {states[TrialState.FAIL]}  {best}" + (f"  {escape(note)}" if note else "")
        )
        self._bar.update(self._task, completed=min(self.tally.ended, self.total), detail=detail)
