"""Checking and quoting HTCondor submit descriptions before anything reaches a schedd.

A schedd accepts ``MY.WantOS = el9`` without a word: it is a valid ClassAd
expression (a reference to an attribute named el9) that is always undefined,
so the job silently never matches or lands on the wrong OS. Every description
batchml renders is therefore parsed twice before it is sent: as a whole by
``htcondor2.Submit`` (the submit language), and entry by entry by
``classad2.ExprTree`` for the entries whose values are ClassAd expressions.
"""

from __future__ import annotations

import re
import warnings

import classad2
import htcondor2

from batchml.backends.base import SchedulerError
from batchml.errors import InvalidValue
from batchml.templates import classad_string

# Submit commands whose values are ClassAd expressions (besides MY.* and +* attributes).
CLASSAD_COMMANDS = frozenset(
    {
        "requirements",
        "rank",
        "periodic_hold",
        "periodic_release",
        "periodic_remove",
        "on_exit_hold",
        "on_exit_remove",
    }
)
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLASSAD_LITERALS = frozenset({"true", "false", "undefined", "error"})


def submit_value(text: str) -> str:
    """``text`` as a submit-language value that reads back literally.

    The submit language expands ``$(NAME)`` macros in every value, quoted or
    not, so a job name such as ``$(touch x)`` would be rewritten; ``$(DOLLAR)``
    is the language's own escape for a literal ``$``. A value ends at the end
    of its line, so a newline cannot be represented and is refused.
    """
    if "\n" in text or "\r" in text:
        raise InvalidValue(
            f"{text!r} holds a line break, which an HTCondor submit value cannot hold",
            hint="rename the folder or value without line breaks",
        )
    return text.replace("$", "$(DOLLAR)")


def submit_string(text: str) -> str:
    """``text`` as a ClassAd string literal inside a submit description.

    The submit language reads MY.* strings in the old ClassAd syntax, where
    only ``\\"`` is an escape: a backslash is kept as is (so ``\\n`` cannot mean a
    newline) and a trailing one continues the line. Such values are refused
    rather than altered; they come from site files (WantOS, image paths).
    """
    if "\\" in text or not text.isprintable():
        raise InvalidValue(
            f"{text!r} holds a backslash or a control character, which an HTCondor "
            "submit description cannot carry in a string",
            hint="remove it from the site's htcondor or container settings",
        )
    return submit_value(classad_string(text))


def submit_label(text: str) -> str:
    """A one-line label (JobBatchName) for ``text``: whitespace runs become one space.

    The submit language cannot carry a line break, and a trailing backslash
    would continue the line; a label is for display, so it is folded instead of
    refused (the exact name reaches the job as $BATCHML_JOB_NAME).
    """
    return submit_value(" ".join(text.split()).rstrip("\\") or "batchml")


def is_classad_valued(key: str) -> bool:
    """Whether the submit entry ``key`` holds a ClassAd expression rather than plain text."""
    lower = key.lower()
    return lower.startswith(("my.", "+")) or lower in CLASSAD_COMMANDS


def parse_submit(text: str, source: str) -> htcondor2.Submit:
    """Parse and check a whole description; SchedulerError lists every problem found."""
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


def classad_problem(key: str, value: str) -> str | None:
    """What is wrong with the ClassAd value of ``key``, or None when it is sound."""
    try:
        classad2.ExprTree(value)
    except (classad2.ClassAdException, ValueError):
        return f"{key} = {value} is not a ClassAd expression"
    bare = value.strip()
    custom = key.lower() not in CLASSAD_COMMANDS
    if custom and _BARE_NAME.fullmatch(bare) and bare.lower() not in _CLASSAD_LITERALS:
        return (
            f"{key} = {bare} refers to an attribute named {bare!r}, not the string: "
            f"write {key} = {classad_string(bare)}"
        )
    return None
