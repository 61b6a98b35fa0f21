"""Rendering submit_templates/ with Jinja2, where every user value is quoted on the way out.

Templates never interpolate raw user text: shell words go through ``shq``
(POSIX single quoting, which keeps newlines, ``$(...)`` and quotes literal),
ClassAd strings through ``classad`` (the HTCondor bindings' own quoting), and
a variable the template does not receive is an error naming the template and
the variable, never an empty string in a job script.
"""

from __future__ import annotations

import shlex
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from batchml.errors import BatchmlError

TEMPLATE_DIR = Path(__file__).parents[1] / "submit_templates"  # batchml/submit_templates


class TemplateError(BatchmlError, ValueError):
    """A template is missing, or was rendered without a variable it needs."""

    exit_code = 2


def classad_string(value: str) -> str:
    """A ClassAd string literal, quoted by the bindings (handles quotes, backslashes, newlines)."""
    import classad2

    return str(classad2.quote(str(value)))


def expand_path(path: str) -> str:
    """A site path for a job script: $VARIABLES and a leading ~ expand there, nothing else does.

    Site files say ``/eos/user/${USER:0:1}/${USER}``, meant for the job's shell;
    command substitution and quotes are neutralised, so a path cannot run code.
    """
    text = str(path)
    if text == "~" or text.startswith("~/"):
        text = "${HOME}" + text[1:]
    for char in ("\\", '"', "`"):
        text = text.replace(char, "\\" + char)
    return '"' + text.replace("$(", "\\$(") + '"'


def shell_words(argv: list[str] | tuple[str, ...]) -> str:
    """An argv as one shell line that gives back exactly those words."""
    return " ".join(shlex.quote(str(word)) for word in argv)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shq"] = lambda value: shlex.quote(str(value))
    env.filters["shell_words"] = shell_words
    env.filters["classad"] = classad_string
    env.filters["expand_path"] = expand_path
    return env


def available(scheduler: str) -> list[str]:
    """Template names for a scheduler, as `batchml submit` accepts them."""
    folder = TEMPLATE_DIR / scheduler
    return sorted(p.name.split(".")[0] for p in folder.glob("*.j2")) if folder.is_dir() else []


def template_path(scheduler: str, name: str) -> str:
    """The template file (relative to the template folder) for ``name`` on ``scheduler``."""
    matches = sorted((TEMPLATE_DIR / scheduler).glob(f"{name}.*.j2"))
    if not matches:
        choices = ", ".join(available(scheduler)) or "none"
        raise TemplateError(
            f"no {scheduler} template named {name!r} in {TEMPLATE_DIR / scheduler}",
            hint=f"use one of: {choices}",
        )
    return f"{scheduler}/{matches[0].name}"


def render(relative_path: str, **variables: Any) -> str:
    """Render one template; a missing variable raises TemplateError naming it."""
    try:
        template = _environment().get_template(relative_path)
        return template.render(**variables)
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"template {TEMPLATE_DIR / relative_path} needs a value the caller did not give: "
            f"{exc.message}",
            hint="pass it to render(), or give the template a default with |default(...)",
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {TEMPLATE_DIR / str(exc.name)} does not exist") from None
