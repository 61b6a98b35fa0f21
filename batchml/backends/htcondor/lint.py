"""Checking HTCondor submit descriptions before anything reaches a schedd.

A schedd accepts ``MY.WantOS = el9`` without a word: it is a valid ClassAd
expression (a reference to an attribute named el9) that is always undefined,
so the job silently never matches or lands on the wrong OS. And a value that
slipped through with a line break in it would add statements of its own (a
second ``executable``, an early ``queue``). Every description batchml sends
is therefore checked three ways: statement by statement (each line one
``key = value``, every key once, the expected executable, one ``queue`` at the
end), as a whole by ``htcondor2.Submit`` (the submit language), and entry by
entry by ``classad2.ExprTree`` for the entries whose values are ClassAd
expressions. How values are written is in ``batchml.config.submit_language``.
"""

from __future__ import annotations

import re
import warnings

import htcondor2

from batchml.backends.base import SchedulerError
from batchml.config.submit_language import classad_problem, is_classad_valued

_ASSIGNMENT = re.compile(r"(\+?[A-Za-z_][A-Za-z0-9_.]*)\s*=(.*)")
_QUEUE = re.compile(r"queue(\s.*)?", re.IGNORECASE)


def parse_submit(text: str, source: str, *, executable: str | None = None) -> htcondor2.Submit:
    """Parse and check a whole description; SchedulerError lists every problem found.

    With ``executable``, the description must run exactly that (as written in it).
    """
    problems = statement_problems(text, executable)
    if problems:
        raise SchedulerError(
            f"{source} is not the description batchml wrote: " + "; ".join(problems),
            hint="a value with a line break or backslash reached it: fix the site file "
            "(batchml site validate FILE) or the job's name and folder",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            description = htcondor2.Submit(text)
    except (ValueError, RuntimeError, htcondor2.HTCondorException) as exc:
        raise SchedulerError(
            f"{source} is not a valid HTCondor submit description: {exc}",
            hint="fix the template or the site's htcondor settings, then render again",
        ) from None
    problems = [
        problem
        for key in description.keys()  # noqa: SIM118 - Submit is not a dict
        if is_classad_valued(key)
        for problem in [classad_problem(key, description.expand(key))]
        if problem
    ]
    if problems:
        raise SchedulerError(
            f"{source} has {len(problems)} bad ClassAd value(s): " + "; ".join(problems),
            hint='quote string values (MY.WantOS = "el9"), e.g. in the site\'s extra_attributes',
        )
    return description


def statement_problems(text: str, executable: str | None = None) -> list[str]:
    """What makes ``text`` more than one job's ``key = value`` lines and a final ``queue``."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    queues: list[int] = []
    last = 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        last = number
        assignment = _ASSIGNMENT.fullmatch(stripped)
        if stripped.endswith("\\"):
            problems.append(f"line {number} ends with a backslash and swallows the next line")
        elif _QUEUE.fullmatch(stripped):
            queues.append(number)
        elif assignment is None:
            problems.append(f"line {number} is not a 'key = value' statement: {stripped!r}")
        else:
            key = _attribute_key(assignment.group(1))
            if key in seen:
                problems.append(f"line {number} sets {assignment.group(1)} a second time")
            seen[key] = assignment.group(2).strip()
    if len(queues) != 1 or queues[0] != last:
        where = ", ".join(map(str, queues)) or "none"
        problems.append(f"one 'queue' statement must end it (found on lines: {where})")
    if executable is not None and seen.get("executable") != executable:
        problems.append(f"it runs {seen.get('executable')!r}, not {executable!r}")
    return problems


def _attribute_key(key: str) -> str:
    """``+Name`` and ``MY.Name`` set the same attribute; submit keys ignore case."""
    lower = key.lower()
    return "my." + lower[1:] if lower.startswith("+") else lower
