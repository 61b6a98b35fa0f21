"""Where a study lives: a journal file on the driver's disk by default, or a database URL.

Workers never open the storage themselves (they go through the dask
connection), so the default needs no shared filesystem and no server. SQLite
on a network filesystem (NFS, AFS, EOS) is refused: its locking does not hold
there and a study of hundreds of trials ends corrupted.
"""

from __future__ import annotations

import os
from pathlib import Path

from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from batchml.errors import InvalidValue

NETWORK_FILESYSTEMS = {
    "nfs", "nfs4", "afs", "cifs", "smb3", "smbfs", "ceph", "lustre", "gpfs", "beegfs",
    "fuse.eosxd", "fuse.sshfs", "fuse.cvmfs2", "glusterfs",
}  # fmt: skip


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
    if isinstance(storage, BaseStorage):
        return storage
    if storage is None or storage.endswith(".journal"):
        path = Path(storage) if storage else default_study_dir() / f"{study_name}.journal"
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


def study_exists(storage: BaseStorage, study_name: str) -> bool:
    """True when the storage already holds a study of this name (a resume)."""
    try:
        storage.get_study_id_from_name(study_name)
    except KeyError:
        return False
    return True
