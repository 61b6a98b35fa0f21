"""Text from files and users, made safe to print in rich markup on someone's terminal.

Registries, studies and site files are shared: a metric, an alias move's
$USER or a description written by one user is printed on another user's
terminal. Printed as markup, ``[/bold]`` ends in a MarkupError for everyone
who lists the registry; printed raw, an ESC sequence rewrites their screen or
title bar, and a bidi override reorders what they read. Every value the CLI
did not write itself goes through ``safe`` on its way out.
"""

from __future__ import annotations

from rich.markup import escape


def safe(value: object, *, keep_newlines: bool = False) -> str:
    """``str(value)`` with control characters written as visible escapes and markup escaped.

    Every character that is not printable (C0 and C1 controls, DEL, line and
    paragraph separators, bidi and other format characters) becomes its
    Python escape, such as ``\\x1b`` or ``\\u202e``; ``keep_newlines`` keeps
    line breaks for text shown as lines (a rendered job file).
    """
    text = "".join(
        c if c.isprintable() or (keep_newlines and c == "\n") else _visible(c) for c in str(value)
    )
    return escape(text)


def _visible(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")
