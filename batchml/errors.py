"""The one exception root of batchml, and the few kinds a caller may want to catch.

Every error a user can cause carries what went wrong (with the offending value),
where (file and field), and what to do next, so the command line can print it
as is, without a traceback. Subclasses also derive from the matching built-in
exception so that generic ``except ValueError`` code keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class BatchmlError(Exception):
    """Root of every error batchml raises on purpose.

    ``hint`` is the next step for the user, printed on its own line by the CLI.
    ``exit_code`` is what the command line exits with: 2 for bad input, 1 otherwise.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


@dataclass(frozen=True)
class FieldProblem:
    """One bad value in a configuration file: where it is, what is wrong, how to fix it."""

    field: str
    problem: str
    fix: str

    def render(self) -> str:
        return f"{self.field}: {self.problem}; fix: {self.fix}"


class ConfigError(BatchmlError, ValueError):
    """A configuration file (site, study, template variables) is unreadable or invalid."""

    exit_code = 2

    def __init__(
        self, source: Path | str, problems: list[FieldProblem], *, hint: str | None = None
    ) -> None:
        self.source = str(source)
        self.problems = problems
        lines = [f"invalid configuration in {self.source}:"]
        lines += [f"  - {p.render()}" for p in problems]
        super().__init__("\n".join(lines), hint=hint)


class SiteNotFoundError(BatchmlError, LookupError):
    """No site configuration of that name exists in any search location."""

    exit_code = 2


class InvalidValue(BatchmlError, ValueError):
    """One value is wrong; ``hint`` says what to write instead.

    Raised inside schema validators so that the configuration loader can report
    the problem and the fix separately, with the field path pydantic knows.
    """

    exit_code = 2
