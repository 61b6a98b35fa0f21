"""Where a study lives: a journal file on the driver's disk by default, or a database URL.

Workers never open the storage themselves (they go through the dask
connection), so the default needs no shared filesystem and no server. SQLite
on a network filesystem (NFS, AFS, EOS) is refused: its locking does not hold
there and a study of hundreds of trials ends corrupted.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from batchml.errors import InvalidValue

__all__ = [
    "NETWORK_FILESYSTEMS",
    "STUDY_NAME",
    "check_study_name",
    "default_study_dir",
    "filesystem_type",
    "journal_path",
    "open_existing_storage",
    "open_storage",
    "study_exists",
]

NETWORK_FILESYSTEMS = {
    "nfs", "nfs4", "afs", "cifs", "smb3", "smbfs", "ceph", "lustre", "gpfs", "beegfs",
    "fuse.eosxd", "fuse.sshfs", "fuse.cvmfs2", "glusterfs",
}  # fmt: skip


STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_study_name(name: str) -> str:
    """``name`` if it can name a journal file and a checkpoint folder; InvalidValue otherwise.

    The whole name must match (``a/b``, ``../x``, an absolute path or a line
    break would otherwise reach outside the study folder or into a file name).
    """
    if not isinstance(name, str) or not STUDY_NAME.fullmatch(name):
        raise InvalidValue(
            f"{name!r} is not a study name: it must match {STUDY_NAME.pattern} as a whole",
            hint="use 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit, such as higgs-mlp (the name becomes a file and a folder name)",
        )
    return name


def default_study_dir() -> Path:
    """Where journals go unless told: the driver's data folder."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "batchml" / "studies"


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts; '' if unknown)."""
    best, kind = "", ""
    target = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3 or len(fields[1]) < len(best):
            continue
        if target == fields[1] or target.startswith(fields[1].rstrip("/") + "/"):
            best, kind = fields[1], fields[2]
    return kind


def open_storage(storage: str | BaseStorage | None, study_name: str) -> BaseStorage:
    """None (a journal file), a journal path, an RDB URL, or a storage object as is."""
    check_study_name(study_name)
    if isinstance(storage, BaseStorage):
        return storage
    if storage is None or storage.endswith(".journal"):
        path = journal_path(storage, study_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if storage.startswith("sqlite:///"):
        database = Path(storage.removeprefix("sqlite:///"))
        kind = filesystem_type(database.parent if database.parent.exists() else Path.cwd())
        if kind in NETWORK_FILESYSTEMS:
            raise InvalidValue(
                f"SQLite file {database} is on a network filesystem ({kind}): its locks do not "
                "hold there and concurrent trials corrupt the study",
                hint="leave storage unset (a journal file on this machine's disk), "
                "or use a PostgreSQL/MySQL URL",
            )
    if "://" not in storage:
        raise InvalidValue(
            f"storage {storage!r} is neither a .journal path nor a database URL",
            hint="use e.g. 'studies/higgs.journal' or 'postgresql://user@host/db'",
        )
    return RDBStorage(storage)


def journal_path(storage: str | None, study_name: str) -> Path:
    """The journal file of a study: the given path, else one named after it in the study folder."""
    return Path(storage) if storage else default_study_dir() / f"{study_name}.journal"


def open_existing_storage(storage: str | None, study_name: str) -> BaseStorage:
    """The storage of a study that must exist already, opened without creating anything.

    For the commands that only read (status, best, report) or continue a study:
    a mistyped name or path is an error naming it, never a new empty journal,
    folder or database.
    """
    check_study_name(study_name)
    if storage is None or storage.endswith(".journal"):
        path = journal_path(storage, study_name)
        if not path.is_file():
            raise InvalidValue(
                f"no study named {study_name!r}: there is no journal file {path}",
                hint="check the name (batchml hpo run creates it), or pass --storage "
                "with the journal path or database URL the study was run with",
            )
        return JournalStorage(JournalFileBackend(str(path)))
    database = storage.removeprefix("sqlite:///")
    if database != storage and not Path(database).is_file():
        raise InvalidValue(
            f"no study named {study_name!r}: there is no SQLite file {database}",
            hint="check the --storage path the study was run with",
        )
    if "://" not in storage:
        return open_storage(storage, study_name)  # the error for a storage of no known kind
    return _existing_database(storage, study_name)


def _existing_database(url: str, study_name: str) -> BaseStorage:
    """An RDB storage whose tables must be there already (Optuna creates them otherwise)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return RDBStorage(url, skip_table_creation=True)
    except (SQLAlchemyError, RuntimeError, ImportError) as exc:
        raise InvalidValue(
            f"cannot read study {study_name!r} from {url}: {exc}",
            hint="check the URL, that its database driver is installed, and that the "
            "study was run with this storage",
        ) from None


def study_exists(storage: BaseStorage, study_name: str) -> bool:
    """True when the storage already holds a study of this name (a resume)."""
    try:
        storage.get_study_id_from_name(study_name)
    except KeyError:
        return False
    return True
