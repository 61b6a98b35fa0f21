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

from batchml._fs import check_destination
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
        check_destination(path, "file", "the study journal")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidValue(
                f"cannot make the folder of the study journal {path}: {exc.strerror}",
                hint="give storage a journal path in a folder you can write",
            ) from None
        return _journal(path)
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
    return _database(storage, study_name, existing=False)


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
        return _journal(path)
    database = storage.removeprefix("sqlite:///")
    if database != storage and not Path(database).is_file():
        raise InvalidValue(
            f"no study named {study_name!r}: there is no SQLite file {database}",
            hint="check the --storage path the study was run with",
        )
    if "://" not in storage:
        return open_storage(storage, study_name)  # the error for a storage of no known kind
    return _database(storage, study_name, existing=True)


def _journal(path: Path) -> JournalStorage:
    """The journal file at ``path``, read through once: a file that is not one is named here."""
    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise InvalidValue(
            f"cannot open the study journal {path}: {exc.strerror or exc}",
            hint="check the path and its permissions",
        ) from None
    except (ValueError, KeyError, TypeError) as exc:  # a line that is no journal record
        raise InvalidValue(
            f"{path} is not an Optuna journal ({type(exc).__name__}: {exc})",
            hint="give the journal file the study was run with, or a path that does not exist "
            "yet for a new study",
        ) from None


def _database(url: str, study_name: str, *, existing: bool) -> BaseStorage:
    """An RDB storage; with ``existing`` its tables must be there (Optuna creates them otherwise).

    A missing driver, an unknown dialect, an unreachable server or a file that
    is no database all become one message, with any password in the URL hidden.
    """
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return RDBStorage(url, skip_table_creation=existing)
    except (SQLAlchemyError, StorageInternalError, RuntimeError, ImportError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        action = f"read study {study_name!r} from" if existing else "open the study database"
        raise InvalidValue(
            f"cannot {action} {_shown_url(url)}: {reason}",
            hint="check the URL, that its database driver is installed (e.g. pip install "
            "psycopg2-binary for postgresql://)"
            + (", and that the study was run with this storage" if existing else ""),
        ) from None


def _shown_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def study_exists(storage: BaseStorage, study_name: str) -> bool:
    """True when the storage already holds a study of this name (a resume)."""
    try:
        storage.get_study_id_from_name(study_name)
    except KeyError:
        return False
    return True
