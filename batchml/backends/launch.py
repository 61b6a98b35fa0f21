"""How a user's command starts: as written, or one process per GPU under torchrun.

Users write a command as they would type it: ``python train.py --lr 1e-3``,
``/opt/venv/bin/python3.11 -u -m pkg.train``, ``train.py``, ``-m pkg.train``,
``./run.sh`` or ``bash wrapper.sh``. torchrun takes something narrower: a
Python script or (``--module``) a module, which it runs under its own
interpreter, or (``--no-python``) any other program. Given ``python train.py``
as it is, torchrun runs a script named ``python`` and every rank dies with
"can't open file '.../python'". ``launch_words`` is the one place that
decides, for a batch job and for a command trial alike, so that a command
starts the same way with one GPU as with many:

- A command that names its program (an interpreter with its options and
  script, a binary, a shell wrapper) runs as written. Under torchrun that is
  ``--no-python``: each rank runs exactly those words, so the interpreter the
  user named runs the ranks with the user's options, even where it is not the
  job's Python (which only runs torchrun itself, and must have torch).
- A ``.py`` script or ``-m module`` given directly runs under the job's
  Python; under torchrun through torchrun's own script and ``--module`` modes.
- A command that starts with any other interpreter option (``-u train.py``,
  ``-c CODE``) is given to the job's Python as well; torchrun cannot pass
  interpreter options, so there it is ``--no-python`` with the job's Python
  named first.

Under torchrun the program follows a ``--`` of its own: torchrun's parser
(argparse) would otherwise take a ``--`` that the user put right after the
script (``train.py -- --flag``) for its own and drop it. The answer is a list
of words, never a shell line: a job script quotes each word
(``templates.shell_words``) and a trial passes the list to exec, so no
argument is ever read by a shell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePath

from batchml.errors import InvalidValue

# What a Python interpreter is called: python, python3, python3.12 (or a path to one).
_INTERPRETER = re.compile(r"python(\d+(\.\d+)?)?")


def launch_words(command: Sequence[str], python: str, torchrun: bool) -> list[str]:
    """The words that start ``command``: the whole argv, or (``torchrun``) the words after
    torchrun's own options. ``python`` runs a script or module given directly; under
    torchrun it must be the Python that runs torchrun, since torchrun starts such ranks
    with its own interpreter."""
    words = [str(word) for word in command]
    if not words or not words[0]:
        raise InvalidValue("the command is empty", hint="give the program first: python train.py")
    first = words[0]
    if first == "-m" and (len(words) < 2 or not words[1]):
        raise InvalidValue(
            "the command '-m' names no module", hint="write e.g. -m mypackage.train --lr 1e-3"
        )
    if first == "-m":
        direct, ranks = [python, *words], ["--module", "--", *words[1:]]
    elif first.startswith("-"):  # options for the job's Python: -u train.py, -c CODE
        direct = [python, *words]
        ranks = ["--no-python", "--", *direct]
    elif first.endswith(".py"):
        direct, ranks = [python, *words], ["--", *words]
    else:  # a program named as it is: an interpreter, a binary, a wrapper
        direct, ranks = words, ["--no-python", "--", *words]
    return ranks if torchrun else direct


def script_position(command: Sequence[str]) -> int | None:
    """Where the Python script file is in ``command``, or None when it runs none (``-m``,
    ``-c``, stdin, another program). Callers that run a command elsewhere than where it
    was written use it to make a relative script path absolute.

    The script is the first word when that ends in ``.py``; else, after a Python
    interpreter or (given directly) the job's Python's options, the first word that is
    not an option, skipping the values ``-W``, ``-X`` and ``--check-hash-based-pycs`` take.
    """
    words = [str(word) for word in command]
    if not words:
        return None
    if _INTERPRETER.fullmatch(PurePath(words[0]).name):
        start = 1
    elif words[0].startswith("-"):
        start = 0
    else:
        return 0 if words[0].endswith(".py") else None
    index = start
    while index < len(words):
        word = words[index]
        if word == "--":
            return index + 1 if index + 1 < len(words) else None
        if word == "-" or not word.startswith("-"):
            return None if word == "-" else index
        if word == "--check-hash-based-pycs":
            index += 1
        elif not word.startswith("--"):
            for at, letter in enumerate(word[1:], start=2):
                if letter in "mc":
                    return None
                if letter in "WX":
                    index += at == len(word)  # the value is the next word
                    break
        index += 1
    return None
