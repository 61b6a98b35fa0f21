"""The live line a user watches during a search: done/total, running, failed, best so far."""

from __future__ import annotations

from types import TracebackType

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from batchml.hpo.outcome import has_ended


class StudyProgress:
    """A rich progress bar fed from the study's storage (what a resumed run also sees)."""

    def __init__(self, study: optuna.Study, total: int, *, enabled: bool = True) -> None:
        self.study = study
        self.total = total
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
        self.update(self.study.get_trials(deepcopy=False), running=0, workers=0)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.__exit__(kind, exc, tb)

    def update(
        self, trials: list[FrozenTrial], *, running: int, workers: int, note: str = ""
    ) -> None:
        """Redraw from ``trials``, the driver's read of the study this cycle; ``note``: the
        sites that are down."""
        counts = {state: 0 for state in TrialState}
        for trial in trials:
            counts[trial.state] += 1
        done = sum(1 for trial in trials if has_ended(trial))
        values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        best = ""
        if values and len(self.study.directions) == 1:
            pick = max if self.study.direction == StudyDirection.MAXIMIZE else min
            best = f"best {pick(values):.5g}"
        detail = (
            f"workers {workers}  running {running}  pruned {counts[TrialState.PRUNED]}  "
            f"failed {counts[TrialState.FAIL]}  {best}" + (f"  {escape(note)}" if note else "")
        )
        self._bar.update(self._task, completed=min(done, self.total), detail=detail)
