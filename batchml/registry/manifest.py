"""What makes a version trustworthy: the manifest of file hashes and the commit marker.

``manifest.json`` lists every artifact under ``files/`` with its sha256 and
size, next to the version's record (signature, metrics, lineage...). The
commit marker ``COMMITTED`` is written last and holds the sha256 of the
manifest itself, so one digest pins the whole version: a reader trusts a
version only when the marker exists and every digest matches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchml.registry.on_disk import dump_json, read_json
from batchml.registry.registry_errors import DamagedFile

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MARKER = "COMMITTED"
FILES = "files"
_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> tuple[str, int]:
    """(hex digest, size) of a file, read in chunks so large artifacts do not fill memory."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative path: {sha256, size}} for every file below ``folder``, paths with '/'."""
    table: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest, size = sha256_file(path)
        table[path.relative_to(folder).as_posix()] = {"sha256": digest, "size": size}
    return table


def manifest_bytes(name: str, files: dict[str, dict[str, Any]], record: dict[str, Any]) -> bytes:
    return dump_json({"format_version": FORMAT_VERSION, "name": name, "files": files, **record})


def marker_bytes(version: int, manifest_digest: str, **binding: str) -> bytes:
    """The commit marker; an attachment's ``binding`` ties it to its version's digest."""
    return dump_json({"version": version, "manifest_sha256": manifest_digest, **binding})


RESTORE = "restore the file from a copy of the registry, or publish the model again"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a version or attachment: the file, what is wrong, what to do."""

    path: Path
    problem: str
    fix: str = RESTORE

    def render(self) -> str:
        return f"{self.path}: {self.problem}"


def check_version(folder: Path) -> list[Problem]:
    """Every mismatch between a committed version (or attachment) and its marker and manifest.

    Every byte is hashed: that is what catches a single flipped bit. A marker
    or manifest that cannot be read is a problem named like any other.
    """
    try:
        expected = read_json(folder / MARKER).get("manifest_sha256")
    except (DamagedFile, AttributeError):
        return [Problem(folder / MARKER, "is not a commit marker (not a JSON object)")]
    except FileNotFoundError:
        return [Problem(folder / MARKER, "missing")]
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return [Problem(manifest_path, "missing")]
    raw = manifest_path.read_bytes()
    if sha256_bytes(raw) != expected:
        return [Problem(manifest_path, f"sha256 differs from the one in {MARKER}")]
    try:
        listed: dict[str, dict[str, Any]] = dict(read_json(manifest_path)["files"])
    except (DamagedFile, KeyError, TypeError, ValueError):
        return [Problem(manifest_path, "has no table of files (not written by batchml)")]
    return _check_files(folder / FILES, listed)


def _check_files(files: Path, listed: dict[str, dict[str, Any]]) -> list[Problem]:
    problems = []
    for rel, expected in listed.items():
        path = files / rel
        if not path.is_file():
            problems.append(Problem(path, "missing"))
            continue
        digest, size = sha256_file(path)
        if size != expected["size"]:
            problems.append(Problem(path, f"size {size} bytes, manifest says {expected['size']}"))
        elif digest != expected["sha256"]:
            problems.append(Problem(path, "sha256 differs from the manifest (content changed)"))
    present = {p.relative_to(files).as_posix() for p in files.rglob("*")}
    for rel in sorted(p for p in present - set(listed) if (files / p).is_file()):
        problems.append(Problem(files / rel, "not in the manifest"))
    return problems
