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

from batchml._fs import write_atomic
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
