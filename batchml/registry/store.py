"""``Registry``: a folder of versioned models that many batch jobs share without a server.

The contract: a committed version never changes and is never half-visible;
version numbers are never reused; alias moves are compare-and-swap; all paths
are relative to the root. Readers need no write permission (except to refresh
caches, which they skip when they cannot). Any number of processes on any
number of hosts may publish, read and move aliases at once; only ``gc`` takes
a lock. The on-disk protocol is described in FORMAT.md.
"""

from __future__ import annotations

import builtins
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from batchml.atomic import write_atomic
from batchml.registry import aliases as alias_chain
from batchml.registry.aliases import AliasState, Expect
from batchml.registry.artifacts import FileSource, stage_example, stage_extra, stage_model
from batchml.registry.atomic import create_exclusive, dump_json, make_dirs, read_json
from batchml.registry.attachments import Attachment, attach, check_attachments
from batchml.registry.diff import Change, diff_versions
from batchml.registry.errors import BadReference, CorruptVersion, NotFound, RegistryError
from batchml.registry.gc import DAY_S, GcReport, collect_garbage
from batchml.registry.layout import FORMAT_FILE, FORMAT_NAME, FORMAT_VERSION, Layout
from batchml.registry.lineage import collect, now_iso
from batchml.registry.manifest import FILES, MANIFEST, MARKER, Problem, check_version
from batchml.registry.names import ModelRef, check_alias, check_name, parse_ref
from batchml.registry.publish import commit, stage_folder
from batchml.registry.record import check_metrics, check_tags, jsonable
from batchml.registry.signature import as_arrays, signature_of
from batchml.registry.version import ModelVersion


class Registry:
    """A model registry in the folder ``root`` (created on first publish when ``create``)."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        self.layout = Layout(Path(root))
        self.root = self.layout.root
        self._open(create)

    def _open(self, create: bool) -> None:
        marker = self.layout.format_file
        if not marker.is_file():
            if not create or (self.root.is_dir() and any(self.root.iterdir())):
                why = "does not exist" if not self.root.exists() else f"has no {FORMAT_FILE}"
                raise NotFound(
                    f"{self.root} is not a batchml registry: it {why}",
                    hint="pass the registry folder (--root or $BATCHML_REGISTRY); "
                    "publishing into an empty or new folder creates one",
                )
            make_dirs(self.root)
            created = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "created": now_iso()}
            create_exclusive(marker, dump_json(created))
        found = read_json(marker)
        if found.get("format") != FORMAT_NAME or found.get("version", 0) > FORMAT_VERSION:
            raise RegistryError(
                f"{marker} declares format {found.get('format')!r} version "
                f"{found.get('version')}; this batchml reads {FORMAT_NAME} up to {FORMAT_VERSION}",
                hint="upgrade batchml to read this registry",
            )

    # -- writing ---------------------------------------------------------------------------

    def publish(
        self,
        name: str,
        model: object = None,
        *,
        files: Mapping[str, FileSource] | None = None,
        input_example: Any = None,
        input_names: Sequence[str] | None = None,
        variables: Mapping[str, Sequence[str]] | None = None,
        preprocessing: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        aliases: Sequence[str] = (),
    ) -> ModelVersion:
        """Store a new immutable version of ``name`` and return it.

        Everything is checked before the first byte is written; an interrupted
        publish leaves nothing a reader can see.
        """
        check_name(name)
        for alias in aliases:
            check_alias(alias)
        arrays = None if input_example is None else as_arrays(input_example, input_names)
        record: dict[str, Any] = {
            "created": now_iso(),
            "signature": signature_of(arrays, variables) if arrays else None,
            "preprocessing": jsonable(dict(preprocessing or {}), "preprocessing"),
            "metrics": check_metrics(metrics),
            "params": jsonable(dict(params or {}), "params"),
            "lineage": jsonable(collect(lineage), "lineage"),
        }
        notes = {"description": description, "tags": check_tags(tags)}
        staged = stage_folder(self.layout)
        try:
            files_dir = staged / FILES
            if model is not None:
                record["model"] = stage_model(model, files_dir, arrays or {})
            record["extra_files"] = stage_extra(files or {}, files_dir)
            if arrays:
                stage_example(arrays, files_dir)
            number, _ = commit(self.layout, name, staged, record)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        if description is not None or notes["tags"]:
            write_atomic(self._annotation_file(name, number), dump_json(notes))
        for alias in aliases:
            self.alias(name, alias, number)
        return self.get(f"{name}/{number}")

    def attach(
        self, version: ModelVersion, kind: str, source: str | os.PathLike[str]
    ) -> Attachment:
        """Attach a copy of the folder ``source`` to ``version`` as ``kind``, once and for good.

        The version stays as it is (its digest does not change); the attachment
        is bound to the digest of the ``version`` the caller verified, and a
        second attachment of the same kind is refused (attachments.py).
        """
        return attach(
            self.layout, version.name, version.version, version.digest, kind, Path(source)
        )

    def alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        *,
        expect: int | Expect | None = Expect.ANY,
    ) -> AliasState:
        """Point ``name@alias`` at ``version`` (None removes it); compare-and-swap on ``expect``."""
        if version is not None:
            self._locate(ModelRef(check_name(name), version=version))
        return alias_chain.move(alias, self.layout.alias(name, alias), version, expect)

    def annotate(
        self,
        ref: str | ModelRef,
        *,
        description: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Change a version's mutable notes (last writer wins); the version itself stays as is."""
        name, number = self._locate(ref)
        path = self._annotation_file(name, number)
        notes = self._annotations(name, number)
        if description is not None:
            notes["description"] = description
        if tags is not None:
            notes["tags"] = check_tags(tags)
        write_atomic(path, dump_json(notes))
        return notes

    # -- reading ---------------------------------------------------------------------------

    def resolve(self, ref: str | ModelRef) -> ModelRef:
        """The reference as ``name/N``; NotFound says what exists instead."""
        name, number = self._locate(ref)
        return ModelRef(name, version=number)

    def _locate(self, ref: str | ModelRef) -> tuple[str, int]:
        ref = parse_ref(ref)
        if ref.version is not None:
            number: int | None = ref.version
            if not self._committed(ref.name, ref.version):
                number = None
        elif ref.alias is not None:
            number = alias_chain.current(self.layout.alias(ref.name, ref.alias)).version
            if number is None:
                raise NotFound(
                    f"model {ref.name!r} has no alias {ref.alias!r}",
                    hint=f"its aliases: {', '.join(self.aliases(ref.name)) or 'none'}",
                )
        elif ref.digest is not None:
            number = self._by_digest(ref.name, ref.digest)
        else:
            number = next(
                (n for n in self._numbers_desc(ref.name) if self._committed(ref.name, n)), None
            )
        if number is None:
            raise NotFound(
                f"no committed version {ref} in {self.root}",
                hint=f"see 'batchml registry list {ref.name}' for the versions there are",
            )
        return ref.name, number

    def get(self, ref: str | ModelRef, *, verify: bool = True) -> ModelVersion:
        """The version named by ``ref``, every file checked against its sha256 first.

        CorruptVersion names the file that changed; such a version is never returned.
        """
        name, number = self._locate(ref)
        folder = self.layout.version(name, number)
        if verify and (problems := check_version(folder)):
            raise CorruptVersion(
                f"{name}/{number} is corrupt: " + "; ".join(p.render() for p in problems),
                hint="restore the file from a copy of the registry, or publish the model again",
            )
        return ModelVersion(
            name=name,
            version=number,
            path=folder,
            digest=read_json(folder / MARKER)["manifest_sha256"],
            manifest=read_json(folder / MANIFEST),
            layout=self.layout,
            annotations=self._annotations(name, number),
        )

    def models(self) -> list[str]:
        folder = self.layout.models
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def versions(self, name: str) -> list[int]:
        """Committed version numbers of ``name``, ascending (one listing and one stat each)."""
        return sorted(n for n in self.layout.numbers(name) if self._committed(name, n))

    def list(self, name: str) -> builtins.list[ModelVersion]:
        """Every committed version with its record (not hash-checked: use ``verify`` for that)."""
        return [self.get(f"{name}/{n}", verify=False) for n in self.versions(name)]

    def aliases(self, name: str) -> dict[str, int]:
        """{alias: version} of every alias that points somewhere."""
        found = {
            a: alias_chain.current(self.layout.alias(name, a)).version
            for a in self.layout.alias_names(name)
        }
        return {a: v for a, v in found.items() if v is not None}

    def history(self, name: str, alias: str | None = None) -> builtins.list[dict[str, Any]]:
        """Every alias move and refused move of ``name`` (or of one alias), oldest first."""
        names = [alias] if alias else self.layout.alias_names(name)
        records = [
            {"alias": a, **r}
            for a in names
            for r in alias_chain.history(self.layout.alias(name, a))
        ]
        return sorted(records, key=lambda r: r["time"])

    def gc(
        self,
        *,
        keep: int | None = None,
        metric: str | None = None,
        maximize: bool = False,
        grace_s: float = DAY_S,
        dry_run: bool = False,
    ) -> GcReport:
        """Remove interrupted publishes and, with ``keep``, all but the best versions (gc.py)."""
        return collect_garbage(
            self, keep=keep, metric=metric, maximize=maximize, grace_s=grace_s, dry_run=dry_run
        )

    def diff(self, old: str | ModelRef, new: str | ModelRef) -> builtins.list[Change]:
        """What differs between two versions (metrics, params, signature, files, lineage...)."""
        return diff_versions(self.get(old, verify=False), self.get(new, verify=False))

    def verify(self, name: str | None = None) -> builtins.list[Problem]:
        """Every problem in every committed version and attachment (of ``name``, or of all)."""
        problems = []
        for model in [check_name(name)] if name else self.models():
            for number in self.versions(model):
                folder = self.layout.version(model, number)
                found = check_version(folder)
                if not found:  # an attachment's binding is checked against a sound digest
                    digest = read_json(folder / MARKER)["manifest_sha256"]
                    found = check_attachments(self.layout, model, number, digest)
                problems += found
        return problems

    # -- helpers ---------------------------------------------------------------------------

    def _committed(self, name: str, number: int) -> bool:
        return (self.layout.version(name, number) / MARKER).is_file()

    def _numbers_desc(self, name: str) -> builtins.list[int]:
        return sorted(self.layout.numbers(name), reverse=True)

    def _by_digest(self, name: str, prefix: str) -> int | None:
        matches = [
            n
            for n in self.versions(name)
            if read_json(self.layout.version(name, n) / MARKER)["manifest_sha256"].startswith(
                prefix
            )
        ]
        if len(matches) > 1:
            raise BadReference(
                f"sha256:{prefix} matches versions {matches} of {name!r}",
                hint="give more digits of the digest",
            )
        return matches[0] if matches else None

    def _annotation_file(self, name: str, number: int) -> Path:
        path = self.layout.annotations(name, number)
        make_dirs(path.parent)
        return path

    def _annotations(self, name: str, number: int) -> dict[str, Any]:
        try:
            return dict(read_json(self.layout.annotations(name, number)))
        except FileNotFoundError:
            return {}
