"""A file-based model registry that many batch jobs share on EOS, AFS or NFS, with no server.

``Registry(root).publish(name, model, ...)`` stores an immutable, checksummed
version; ``get("name@production" | "name/3" | "name@sha256:...")`` returns it
verified; ``attach(version, kind, folder)`` adds a write-once folder to it.
Importing this package does not import torch: torch is imported only to store
or load a torch model. The on-disk protocol is described in FORMAT.md.
"""

from batchml.registry.aliases import AliasState, Expect
from batchml.registry.attachments import Attachment
from batchml.registry.manifest import Problem
from batchml.registry.names import ModelRef, parse_ref
from batchml.registry.registry_errors import (
    AliasConflict,
    BadReference,
    CorruptVersion,
    DamagedFile,
    LockHeld,
    NotFound,
    RegistryError,
    StorageError,
)
from batchml.registry.store import Registry, Survey
from batchml.registry.version import ModelVersion

__all__ = [
    "AliasConflict",
    "AliasState",
    "Attachment",
    "BadReference",
    "CorruptVersion",
    "DamagedFile",
    "Expect",
    "LockHeld",
    "ModelRef",
    "ModelVersion",
    "NotFound",
    "Problem",
    "Registry",
    "RegistryError",
    "StorageError",
    "Survey",
    "parse_ref",
]
