"""Attachments: write-once folders added to a committed version without changing it.

A version is immutable (its manifest pins every byte), yet some artifacts only
exist after it is published: the ONNX package built from it, for one. They go
to ``models/<name>/attachments/<N>/<kind>/``, outside ``versions/<N>/``, so the
version's digest never changes. An attachment is sealed like a version (a
manifest of every file, read-only files) and its ``COMMITTED`` marker, written
last, also holds the digest of the version it belongs to, so it cannot be
mistaken for an attachment of another version. It is staged complete on the
registry's filesystem and appears with one ``rename``, which refuses to replace
an existing attachment: one attachment per version and kind, ever.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from batchml._fs import claim_by_rename, fsync_dir, make_readonly, write_new
from batchml.errors import InvalidValue
from batchml.registry.commit import seal, stage_folder
from batchml.registry.layout import Layout
from batchml.registry.lineage import now_iso
from batchml.registry.manifest import FILES, MANIFEST, MARKER, Problem, check_version, marker_bytes
from batchml.registry.on_disk import make_dirs, read_json
from batchml.registry.registry_errors import CorruptVersion, DamagedFile, NotFound
from batchml.registry.states import read_state

BINDING = "version_manifest_sha256"


@dataclass(frozen=True)
class Attachment:
    """A committed attachment that passed its checks when it was read (or was just written)."""

    name: str
    version: int
    kind: str
    path: Path
    digest: str
    manifest: dict[str, Any]

    @property
    def folder(self) -> Path:
        """The attached folder's content as it was given (read-only files)."""
        return self.path / FILES

    @property
    def files(self) -> list[str]:
        return sorted(self.manifest["files"])


def attach(
    layout: Layout, name: str, number: int, version_digest: str, kind: str, source: Path
) -> Attachment:
    """Attach a copy of the folder ``source`` to version N (whose digest the caller verified).

    InvalidValue if the version already has an attachment of this kind; then
    nothing is left behind, and the existing attachment is untouched.
    """
    target = layout.attachment(name, number, kind)
    if not source.is_dir():
        raise InvalidValue(f"{source} is not a folder", hint="attach a folder, such as a package")
    _check_still_committed(layout, name, number, version_digest)
    if target.exists():  # fail before copying; the rename below is what guarantees it
        _refuse(target, name, number, kind)
    staged = stage_folder(layout)
    try:
        shutil.copytree(source, staged / FILES, dirs_exist_ok=True)
        digest = seal(staged, name, {"created": now_iso(), "version": number, "kind": kind})
        marker = marker_bytes(number, digest, kind=kind, **{BINDING: version_digest})
        write_new(staged / MARKER, marker)  # last: the attachment is complete
        make_readonly(staged / MARKER)
        fsync_dir(staged)
        make_dirs(target.parent)
        if not claim_by_rename(staged, target):
            _refuse(target, name, number, kind)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return _loaded(name, number, kind, target)


def committed_kinds(layout: Layout, name: str, number: int) -> list[str]:
    """The kinds of version N's committed attachments (a listing and a stat each)."""
    return [f.name for f in layout.attachment_folders(name, number) if (f / MARKER).is_file()]


def read_attachment(
    layout: Layout, name: str, number: int, version_digest: str, kind: str
) -> Attachment:
    """One committed attachment, every file hashed; a corrupt one is never returned."""
    folder = layout.attachment(name, number, kind)
    if not (folder / MARKER).is_file():
        kinds = committed_kinds(layout, name, number)
        raise NotFound(
            f"{name}/{number} has no {kind!r} attachment",
            hint=f"its attachments: {', '.join(kinds) or 'none'}",
        )
    if problems := check_attachment(folder, version_digest):
        raise CorruptVersion(
            f"the {kind!r} attachment of {name}/{number} is corrupt: "
            + "; ".join(p.render() for p in problems),
            hint="restore the file from a copy of the registry, "
            "or publish the model again and attach to the new version",
        )
    return _loaded(name, number, kind, folder)


def check_attachments(layout: Layout, name: str, number: int, version_digest: str) -> list[Problem]:
    """Every problem in version N's committed attachments."""
    return [
        problem
        for folder in layout.attachment_folders(name, number)
        if (folder / MARKER).is_file()
        for problem in check_attachment(folder, version_digest)
    ]


def check_attachment(folder: Path, version_digest: str) -> list[Problem]:
    """The version checks, plus the binding: the marker must name this version's digest."""
    try:
        bound = read_json(folder / MARKER).get(BINDING)
    except (DamagedFile, AttributeError):
        return [Problem(folder / MARKER, "is not a commit marker (not a JSON object)")]
    if bound != version_digest:
        return [
            Problem(
                folder / MARKER,
                f"binds the attachment to sha256:{bound}, "
                f"but the version is sha256:{version_digest}",
            )
        ]
    return check_version(folder)


def _check_still_committed(layout: Layout, name: str, number: int, version_digest: str) -> None:
    if read_state(layout.version(name, number), number).digest != version_digest:
        raise NotFound(
            f"{name}/{number} with sha256:{version_digest} is no longer in the registry",
            hint="gc may have removed it: get the version again",
        )


def _refuse(target: Path, name: str, number: int, kind: str) -> NoReturn:
    if (target / MARKER).exists():
        raise InvalidValue(
            f"{name}/{number} already has a {kind!r} attachment ({target})",
            hint="an attachment is write-once: publish the model again as a new version "
            "and attach to that one (gc removes an attachment only with its version)",
        )
    raise InvalidValue(
        f"{target} is left over from an interrupted gc",
        hint="run 'batchml registry gc', then attach again",
    )


def _loaded(name: str, number: int, kind: str, folder: Path) -> Attachment:
    return Attachment(
        name=name,
        version=number,
        kind=kind,
        path=folder,
        digest=read_json(folder / MARKER)["manifest_sha256"],
        manifest=read_json(folder / MANIFEST),
    )
