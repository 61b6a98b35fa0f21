"""``MANIFEST``: the sha256 and size of every file of a package, so a copy can be checked.

A package is copied to EOS, to a CMSSW data area, to a Triton server; the
manifest lets any of them check, with ``sha256sum`` alone, that nothing was
lost or changed on the way. One line per file, ``<sha256>  <size>  <path>``,
under a format header, sorted by path; MANIFEST itself is not listed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from batchml.atomic import write_atomic

NAME = "MANIFEST"
HEADER = "# batchml-package-manifest 1: sha256  size  path"


def _digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != NAME)


def write_manifest(folder: Path) -> None:
    """(Re)write ``folder/MANIFEST`` from the files there now."""
    lines = [HEADER]
    for path in _files(folder):
        lines.append(
            f"{_digest(path)}  {path.stat().st_size}  {path.relative_to(folder).as_posix()}"
        )
    write_atomic(folder / NAME, ("\n".join(lines) + "\n").encode())


def check_manifest(folder: Path) -> list[str]:
    """What differs from the MANIFEST: changed, missing and unlisted files (empty: all good)."""
    listed: dict[str, str] = {}
    for line in (folder / NAME).read_text().splitlines()[1:]:
        digest, _, rel = line.split("  ", 2)
        listed[rel] = digest
    present = {p.relative_to(folder).as_posix(): p for p in _files(folder)}
    problems = [f"{rel}: missing" for rel in sorted(set(listed) - set(present))]
    problems += [f"{rel}: not in the MANIFEST" for rel in sorted(set(present) - set(listed))]
    problems += [
        f"{rel}: sha256 differs"
        for rel in sorted(set(listed) & set(present))
        if _digest(present[rel]) != listed[rel]
    ]
    return problems
