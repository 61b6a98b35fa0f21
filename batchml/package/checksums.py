"""``MANIFEST`` and ``MANIFEST.json``: the sha256 and size of every file of a package.

A package is copied to EOS, to a CMSSW data area, to a Triton server; the
manifest lets any of them check, with ``sha256sum -c MANIFEST`` alone, that
nothing was lost or changed on the way. So ``MANIFEST`` is exactly what
``sha256sum`` writes and reads: one line per file, ``<sha256>  <path>``,
sorted by path, nothing else. ``MANIFEST.json`` holds the same files with
their sizes, under a format name and version. Neither lists itself or the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchml._fs import write_atomic
from batchml.errors import InvalidValue
from batchml.registry.manifest import sha256_file

NAME = "MANIFEST"
RECORD = "MANIFEST.json"
FORMAT = "batchml-package-manifest"
FORMAT_VERSION = 2  # 1 had a header line and a size column in MANIFEST


def _files(folder: Path) -> dict[str, Path]:
    listed = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (NAME, RECORD))
    return {p.relative_to(folder).as_posix(): p for p in listed}


def write_manifest(folder: Path) -> None:
    """(Re)write ``folder/MANIFEST`` and ``folder/MANIFEST.json`` from the files there now."""
    table = {rel: sha256_file(path) for rel, path in _files(folder).items()}
    lines = "".join(f"{digest}  {rel}\n" for rel, (digest, _) in table.items())
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "files": {rel: {"sha256": digest, "size": size} for rel, (digest, size) in table.items()},
    }
    write_atomic(folder / RECORD, (json.dumps(record, indent=1) + "\n").encode())
    write_atomic(folder / NAME, lines.encode())


def check_manifest(folder: Path) -> list[str]:
    """What differs from the MANIFEST: changed, missing and unlisted files (empty: all good)."""
    listed: dict[str, str] = {}
    for line in (folder / NAME).read_text().splitlines():
        digest, _, rel = line.partition("  ")
        listed[rel] = digest
    present = _files(folder)
    problems = [f"{rel}: missing" for rel in sorted(set(listed) - set(present))]
    problems += [f"{rel}: not in the MANIFEST" for rel in sorted(set(present) - set(listed))]
    problems += [
        f"{rel}: sha256 differs"
        for rel in sorted(set(listed) & set(present))
        if sha256_file(present[rel])[0] != listed[rel]
    ]
    return problems


def read_metadata(folder: Path) -> dict[str, Any]:
    """A package's ``metadata.json``; InvalidValue when ``folder`` is no package folder."""
    path = folder / "metadata.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem = "does not exist" if not folder.exists() else "has no metadata.json"
        raise _not_package(folder, problem) from None
    except (OSError, ValueError) as exc:  # a file, not a folder; unreadable; not JSON
        raise _not_package(folder, f"has no readable metadata.json ({exc})") from None
    if not isinstance(data, dict):
        raise _not_package(folder, "has a metadata.json that is not a JSON object")
    return data


def _not_package(folder: Path, problem: str) -> InvalidValue:
    return InvalidValue(
        f"{folder} {problem}: it is not a package folder",
        hint="pass a folder written by 'batchml package build MODEL -o DIR'",
    )
