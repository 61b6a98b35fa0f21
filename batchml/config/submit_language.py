"""Writing text into HTCondor's submit language so that it reads back literally.

A submit description is line-based and macro-expanded: a value ends at the
end of its line, a trailing backslash joins the next line to it, white space
around it is dropped, and ``$(NAME)`` in it is replaced, quoted or not. The
language's own escape for a literal ``$`` is ``$(DOLLAR)``, but its scanner
skips ``$$`` pairs whole (``$$(NAME)`` is a substitution made later, at match
time, from the machine's ad), so ``$(DOLLAR)$(DOLLAR)`` comes out as
``$$(DOLLAR)``, and a ``$(DOLLAR)`` that a replacement leaves behind is
replaced again. Here a run of dollars is written as its pairs, which the
scanner leaves alone, then one ``$(DOLLAR)`` for an odd one left over; the few
texts no spelling can carry (``$$(`` and ``$(DOLLAR``) are refused, as are
line breaks and other control characters, so one value is always one line.

Site files are checked with the same rules (``submit_problem``) when they are
read, and ``batchml.backends.htcondor.lint`` checks whole descriptions before they are sent.
"""

from __future__ import annotations

import re

from batchml.config.templates import classad_string
from batchml.errors import InvalidValue

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
_UNWRITABLE = re.compile(r"\$\$\(|\$\(dollar\b", re.IGNORECASE)
_DOLLARS = re.compile(r"\$+")
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLASSAD_LITERALS = frozenset({"true", "false", "undefined", "error"})


def submit_problem(text: str, *, embedded: bool = False) -> str | None:
    """Why ``text`` cannot be written as a submit value (None when it can).

    ``embedded`` text sits inside a longer value (an argument inside
    ``arguments = "..."``), where white space at its ends and a final
    backslash are harmless.
    """
    if not text.isprintable():
        return "holds a line break or another control character (one value is one line)"
    found = _UNWRITABLE.search(text)
    if found:
        return (
            f"holds {found.group()!r}, which the submit language always expands "
            "(a match-time substitution or its $(DOLLAR) escape)"
        )
    if embedded:
        return None
    if text != text.strip():
        return "begins or ends with white space, which the submit language drops"
    if text.endswith("\\"):
        return "ends with a backslash, which joins the next line of the submit file to it"
    return None


def submit_value(text: str, *, embedded: bool = False) -> str:
    """``text`` as a submit-language value that reads back literally; InvalidValue if it cannot."""
    problem = submit_problem(text, embedded=embedded)
    if problem:
        shown = repr(text) if len(text) <= 200 else f"{text[:200]!r}..."
        raise InvalidValue(
            f"{shown} {problem}, so it cannot go into an HTCondor submit description",
            hint="rename the folder or value, or remove the character",
        )
    return _DOLLARS.sub(_write_dollars, text)


def _write_dollars(run: re.Match[str]) -> str:
    """A run of ``$``: its pairs as they are, then ``$(DOLLAR)`` for an odd one (never before)."""
    count = len(run.group())
    return "$" * (count - count % 2) + "$(DOLLAR)" * (count % 2)


def submit_string(text: str) -> str:
    """``text`` as a ClassAd string literal inside a submit description.

    The submit language reads MY.* strings in the old ClassAd syntax, where
    only ``\\"`` is an escape: a backslash is kept as is (so ``\\n`` cannot mean a
    newline). Such values are refused rather than altered; they come from site
    files (WantOS, image paths).
    """
    if "\\" in text or not text.isprintable():
        raise InvalidValue(
            f"{text!r} holds a backslash or a control character, which an HTCondor "
            "submit description cannot carry in a string",
            hint="remove it from the site's htcondor or container settings",
        )
    return submit_value(classad_string(text))


def submit_label(text: str) -> str:
    """A one-line label (JobBatchName) for ``text``: folded where it cannot be written as is.

    A label is for display, so line breaks and control characters become
    spaces, runs of white space one space, a trailing backslash goes, and the
    unwritable dollar forms get a space (the exact name reaches the job as
    $BATCHML_JOB_NAME).
    """
    shown = "".join(c if c.isprintable() else " " for c in text)
    shown = " ".join(shown.split()).rstrip("\\").strip()
    shown = _UNWRITABLE.sub(lambda found: found.group().replace("(", " ("), shown)
    return submit_value(shown or "batchml")


def is_classad_valued(key: str) -> bool:
    """Whether the submit entry ``key`` holds a ClassAd expression rather than plain text."""
    lower = key.lower()
    return lower.startswith(("my.", "+")) or lower in CLASSAD_COMMANDS


def classad_problem(key: str, value: str) -> str | None:
    """What is wrong with the ClassAd value of ``key``, or None when it is sound."""
    import classad2

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
