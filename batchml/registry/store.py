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
import functools
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from batchml._fs import create_exclusive, write_atomic
from batchml.registry import aliases as alias_chain
from batchml.registry.aliases import AliasState, Expect
from batchml.registry.artifacts import FileSource, stage_example, stage_extra, stage_model
from batchml.registry.attachments import Attachment, attach, check_attachments
from batchml.registry.commit import commit, stage_folder
from batchml.registry.diff import Change, diff_versions
from batchml.registry.gc import DAY_S, GcReport, collect_garbage
from batchml.registry.layout import FORMAT_FILE, FORMAT_NAME, FORMAT_VERSION, Layout
from batchml.registry.lineage import collect, now_iso
from batchml.registry.manifest import FILES, MANIFEST, RESTORE, Problem, check_version
from batchml.registry.names import ModelRef, check_alias, check_name, parse_ref
from batchml.registry.on_disk import dump_json, make_dirs, read_json
from batchml.registry.record import check_metrics, check_tags, jsonable
from batchml.registry.registry_errors import (
    BadReference,
    CorruptVersion,
    DamagedFile,
    NotFound,
    RegistryError,
    StorageError,
    storage_error,
)
from batchml.registry.signature import as_arrays, signature_of
from batchml.registry.states import State, VersionState, never_visible, read_state
from batchml.registry.version import ModelVersion

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _storage(action: str, *, writing: bool = False) -> Callable[[_Method], _Method]:
    """Turn an OSError from the filesystem into a StorageError naming the action and path."""

    def wrap(method: _Method) -> _Method:
        @functools.wraps(method)
        def call(self: Registry, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except StorageError:
                raise
            except OSError as exc:
                raise storage_error(exc, action, self.root, writing=writing) from exc

        return cast(_Method, call)

    return wrap


@dataclass(frozen=True)
class Survey:
    """The versions of a model as ``list`` gives them, and the damaged ones it leaves out."""

    versions: list[ModelVersion]
    damaged: list[Problem]


class Registry:
    """A model registry in the folder ``root`` (created on first publish when ``create``).

    Every method turns a refusal of the filesystem (full, read-only, no
    permission) into a StorageError naming the path; a damaged version
    (states.py) is named by readers, with the file and the fix, and skipped
    by ``list`` and ``versions``, never silently dropped by ``verify`` or ``gc``.
    """

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        self.layout = Layout(Path(root))
        self.root = self.layout.root
        try:
            self._open(create)
        except OSError as exc:
            raise storage_error(exc, "open the registry", self.root, writing=create) from exc

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
        found = found if isinstance(found, dict) else {}
        version = found.get("version")
        if found.get("format") != FORMAT_NAME or not isinstance(version, int):
            raise RegistryError(
                f"{marker} does not declare a {FORMAT_NAME} format version",
                hint=f"restore {FORMAT_FILE} from a copy of the registry",
            )
        if version > FORMAT_VERSION:
            raise RegistryError(
                f"{marker} declares format {FORMAT_NAME!r} version {version}; "
                f"this batchml reads {FORMAT_NAME} up to {FORMAT_VERSION}",
                hint="upgrade batchml to read this registry",
            )

    # -- writing ---------------------------------------------------------------------------

    @_storage("publish a version", writing=True)
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

        All or nothing: the version, its description and tags and its alias
        moves become visible together, or, when anything fails (or the writer
        is killed), none of them does and a retry publishes once. Everything
        is checked before the first byte is written.
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

        def annotate(number: int) -> None:  # runs while the version is still invisible
            if description is not None or notes["tags"]:
                write_atomic(self._annotation_file(name, number), dump_json(notes))
            for alias in aliases:
                folder = self.layout.alias(name, alias)
                alias_chain.move(alias, folder, number, Expect.ANY, self._pending(name))

        staged = stage_folder(self.layout)
        try:
            files_dir = staged / FILES
            if model is not None:
                record["model"] = stage_model(model, files_dir, arrays or {})
            record["extra_files"] = stage_extra(files or {}, files_dir)
            if arrays:
                stage_example(arrays, files_dir)
            number = commit(self.layout, name, staged, record, annotate)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return self.get(f"{name}/{number}")

    @_storage("attach to a version", writing=True)
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

    @_storage("move an alias", writing=True)
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
            self._find(ModelRef(check_name(name), version=version))
        folder = self.layout.alias(name, alias)
        return alias_chain.move(alias, folder, version, expect, self._pending(name))

    @_storage("annotate a version", writing=True)
    def annotate(
        self,
        ref: str | ModelRef,
        *,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        intended_use: str | None = None,
        limitations: str | None = None,
    ) -> dict[str, Any]:
        """Change a version's mutable notes (last writer wins); the version itself stays as is.

        ``intended_use`` and ``limitations`` are the fields of the model card
        (pages/card.py) that only a person can write.
        """
        name, state = self._find(ref)
        notes = self._annotations(name, state.number)
        texts = {"description": description, "intended_use": intended_use}
        texts["limitations"] = limitations
        notes.update({key: text for key, text in texts.items() if text is not None})
        if tags is not None:
            notes["tags"] = check_tags(tags)
        write_atomic(self._annotation_file(name, state.number), dump_json(notes))  # checked first
        return notes

    # -- reading ---------------------------------------------------------------------------

    @_storage("read the registry")
    def resolve(self, ref: str | ModelRef) -> ModelRef:
        """The reference as ``name/N``; NotFound says what exists instead."""
        name, state = self._find(ref)
        return ModelRef(name, version=state.number)

    def _find(self, ref: str | ModelRef) -> tuple[str, VersionState]:
        """The committed version ``ref`` names; CorruptVersion if it is damaged."""
        ref = parse_ref(ref)
        if ref.alias is not None:
            number = alias_chain.current(
                self.layout.alias(ref.name, ref.alias), self._pending(ref.name)
            ).version
            if number is None:
                raise NotFound(
                    f"model {ref.name!r} has no alias {ref.alias!r}",
                    hint=f"its aliases: {', '.join(self.aliases(ref.name)) or 'none'}",
                )
        elif ref.digest is not None:
            number = self._by_digest(ref.name, ref.digest)
        elif ref.version is not None:
            number = ref.version
        else:
            number = self._latest(ref.name)
        state = None if number is None else self._state(ref.name, number)
        if state is not None and state.problem is not None:
            raise _damage(ref.name, state.number, state.problem)
        if state is None or state.state is not State.COMMITTED:
            raise NotFound(
                f"no committed version {ref} in {self.root}",
                hint=f"see 'batchml registry list {ref.name}' for the versions there are",
            )
        return ref.name, state

    @_storage("read a version")
    def get(self, ref: str | ModelRef, *, verify: bool = True) -> ModelVersion:
        """The version named by ``ref``, every file checked against its sha256 first.

        CorruptVersion names the file that changed or is missing; such a
        version is never returned.
        """
        name, state = self._find(ref)
        if verify and (problems := check_version(state.folder)):
            raise CorruptVersion(
                f"{name}/{state.number} is corrupt: " + "; ".join(p.render() for p in problems),
                hint=problems[0].fix,
            )
        return self._version(name, state)

    def _version(self, name: str, state: VersionState) -> ModelVersion:
        return ModelVersion(
            name=name,
            version=state.number,
            path=state.folder,
            digest=state.digest,
            manifest=read_json(state.folder / MANIFEST),
            layout=self.layout,
            annotations=self._annotations(name, state.number),
        )

    @_storage("read the registry")
    def models(self) -> list[str]:
        folder = self.layout.models
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    @_storage("read the registry")
    def versions(self, name: str) -> list[int]:
        """Committed version numbers of ``name``, ascending (a listing and a small read each)."""
        return [s.number for s in self._states(name) if s.state is State.COMMITTED]

    @_storage("read the registry")
    def list(self, name: str) -> builtins.list[ModelVersion]:
        """Every readable committed version with its record (not hash-checked: see ``verify``).

        A damaged version is left out here and named by ``damaged``.
        """
        return self.survey(name).versions

    @_storage("read the registry")
    def damaged(self, name: str) -> builtins.list[Problem]:
        """What is wrong with each version of ``name`` that ``list`` leaves out (no hashing)."""
        return self.survey(name).damaged

    @_storage("read the registry")
    def survey(self, name: str) -> Survey:
        """``list`` and ``damaged`` from one reading of the versions, for who needs both.

        Each version's files are read once, so a caller that shows the versions
        and names the damaged ones does not pay for reading every record twice.
        """
        found, problems = [], []
        for state in self._states(name):
            if state.problem is not None:
                problems.append(state.problem)
            elif state.state is State.COMMITTED:
                try:
                    found.append(self._version(name, state))
                except DamagedFile as exc:
                    problems.append(Problem(exc.path, exc.problem, exc.hint or RESTORE))
        return Survey(found, problems)

    @_storage("read the registry")
    def aliases(self, name: str) -> dict[str, int]:
        """{alias: version} of every alias that points somewhere."""
        pending = self._pending(name)
        found = {
            a: alias_chain.current(self.layout.alias(name, a), pending).version
            for a in self.layout.alias_names(name)
        }
        return {a: v for a, v in found.items() if v is not None}

    @_storage("read the alias history")
    def history(self, name: str, alias: str | None = None) -> builtins.list[dict[str, Any]]:
        """Every alias move and refused move of ``name`` (or of one alias), oldest first.

        ``uncommitted`` marks a move to a version whose publish has not
        committed (yet, or ever): it does not count.
        """
        self._model(name)
        known = self.layout.alias_names(name)
        if alias is not None and alias not in known:
            check_alias(alias)
            raise NotFound(
                f"model {name!r} never had an alias {alias!r}",
                hint=f"its aliases: {', '.join(known) or 'none'}",
            )
        pending = self._pending(name)
        records = []
        for a in [alias] if alias else known:
            for record in alias_chain.history(self.layout.alias(name, a)):
                target = record["to"]
                moved = record["outcome"] == "moved" and isinstance(target, int)
                records.append({"alias": a, **record, "uncommitted": moved and pending(target)})
        return sorted(records, key=lambda r: str(r["time"]))

    @_storage("collect garbage", writing=True)
    def gc(
        self,
        *,
        keep: int | None = None,
        metric: str | None = None,
        maximize: bool = False,
        grace_s: float = DAY_S,
        damaged: bool = False,
        dry_run: bool = False,
    ) -> GcReport:
        """Remove interrupted publishes and, with ``keep``, all but the best versions (gc.py).

        ``damaged`` also removes damaged versions no alias points at.
        """
        return collect_garbage(
            self,
            keep=keep,
            metric=metric,
            maximize=maximize,
            grace_s=grace_s,
            damaged=damaged,
            dry_run=dry_run,
        )

    @_storage("read two versions")
    def diff(self, old: str | ModelRef, new: str | ModelRef) -> builtins.list[Change]:
        """What differs between two versions (metrics, params, signature, files, lineage...)."""
        return diff_versions(self.get(old, verify=False), self.get(new, verify=False))

    @_storage("verify the registry")
    def verify(self, name: str | None = None) -> builtins.list[Problem]:
        """Every problem of every version and attachment (of ``name``, or of all).

        Damaged versions are named with the file and the fix; committed ones
        have every byte hashed. NotFound when the model ``name`` does not exist.
        """
        problems = []
        for model in [self._model(name)] if name else self.models():
            for state in self._states(model):
                if state.problem is not None:
                    problems.append(state.problem)
                elif state.state is State.COMMITTED:
                    found = check_version(state.folder)
                    if not found:  # an attachment's binding is checked against a sound digest
                        found = check_attachments(self.layout, model, state.number, state.digest)
                    problems += found
        return problems

    # -- helpers ---------------------------------------------------------------------------

    def _model(self, name: str) -> str:
        """``name`` if the registry has that model; NotFound naming where it looked otherwise."""
        if not self.layout.model(name).is_dir():
            raise NotFound(
                f"no model {name!r} in {self.root}",
                hint=f"its models: {', '.join(self.models()) or 'none'}",
            )
        return name

    def _state(self, name: str, number: int) -> VersionState | None:
        """Version N's state; None if the number was never claimed."""
        folder = self.layout.version(name, number)
        return read_state(folder, number) if os.path.lexists(folder) else None

    def _states(self, name: str) -> builtins.list[VersionState]:
        return [
            read_state(self.layout.version(name, n), n) for n in sorted(self.layout.numbers(name))
        ]

    def _pending(self, name: str) -> Callable[[int], bool]:
        """Whether version N of ``name`` was claimed by a publish that has not committed it."""
        return lambda number: never_visible(self.layout.version(name, number))

    def _latest(self, name: str) -> int | None:
        """The newest version a reader may see or must be told about (committed or damaged)."""
        for number in sorted(self.layout.numbers(name), reverse=True):
            state = read_state(self.layout.version(name, number), number)
            if state.state in (State.COMMITTED, State.DAMAGED):
                return number
        return None

    def _by_digest(self, name: str, prefix: str) -> int | None:
        matches = [
            s.number
            for s in self._states(name)
            if s.state is State.COMMITTED and s.digest.startswith(prefix)
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
        path = self.layout.annotations(name, number)
        try:
            notes = read_json(path)
        except FileNotFoundError:
            return {}
        if not isinstance(notes, dict):
            raise DamagedFile(path, "is not a JSON object", hint=_NOTES_FIX)
        return notes


_NOTES_FIX = "restore it from a copy of the registry, or delete it (it holds only notes)"


def _damage(name: str, number: int, problem: Problem) -> CorruptVersion:
    return CorruptVersion(f"{name}/{number} is damaged: {problem.render()}", hint=problem.fix)
