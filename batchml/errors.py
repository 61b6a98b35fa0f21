"""The one exception root of batchml, and the few kinds a caller may want to catch.

Every error a user can cause carries what went wrong (with the offending value),
where (file and field), and what to do next, so the command line can print it
as is, without a traceback. Subclasses also derive from the matching built-in
exception so that generic ``except ValueError`` code keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BatchmlError",
    "ConfigError",
    "FieldProblem",
    "InvalidValue",
    "SiteNotFoundError",
]


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

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its class and every field, without calling ``__init__`` again.

        The default pickles only ``args`` (the message) and calls the class with
        them: the hint is lost, and a subclass with other parameters (ConfigError)
        cannot be rebuilt at all. Errors cross processes (dask workers, the
        reading process, DataLoader workers), so each must arrive whole.
        """
        return (_restore, (type(self), self.args), self.__dict__)

    def detached(self) -> BatchmlError:
        """A copy without traceback and chained exceptions, to send to another process.

        dask.distributed installs tblib's pickling of every exception class,
        which also pickles ``__cause__``: a library's own exception there (ISA-L's
        ``IsalError`` names a module that cannot be imported) makes the whole
        error unpicklable. What the user reads is the message and the hint.
        """
        copy = _restore(type(self), self.args)
        copy.__dict__.update(self.__dict__)
        return copy


def _restore(cls: type[BatchmlError], args: tuple[Any, ...]) -> BatchmlError:
    """A pickled error of ``cls`` with its arguments; its fields are set by pickle afterwards."""
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    return error


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
