"""Where everything lives inside a registry folder: the one place that builds paths.

Every path is relative to the root and built from validated names, so the
folder can be moved or copied (rsync to EOS) and nothing can point outside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batchml.config.units import is_count
from batchml.registry.names import check_alias, check_name

FORMAT_FILE = "batchml-registry.json"
FORMAT_NAME = "batchml-registry"
FORMAT_VERSION = 1
TOMBSTONE = "TOMBSTONE"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def format_file(self) -> Path:
        return self.root / FORMAT_FILE

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    def model(self, name: str) -> Path:
        return self.models / check_name(name)

    def versions(self, name: str) -> Path:
        return self.model(name) / "versions"

    def version(self, name: str, number: int) -> Path:
        return self.versions(name) / str(int(number))

    def alias(self, name: str, alias: str) -> Path:
        return self.model(name) / "aliases" / check_alias(alias)

    def alias_names(self, name: str) -> list[str]:
        folder = self.model(name) / "aliases"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def annotations(self, name: str, number: int) -> Path:
        return self.model(name) / "annotations" / f"{int(number)}.json"

    def attachments(self, name: str, number: int) -> Path:
        """The folder of version N's attachments, beside ``versions/`` so N stays immutable."""
        return self.model(name) / "attachments" / str(int(number))

    def attachment(self, name: str, number: int, kind: str) -> Path:
        return self.attachments(name, number) / check_name(kind, "attachment kind")

    def attachment_folders(self, name: str, number: int) -> list[Path]:
        """Every attachment folder of version N, committed or not (a listing, no reads)."""
        folder = self.attachments(name, number)
        return sorted(folder.iterdir()) if folder.is_dir() else []

    def attached_numbers(self, name: str) -> list[int]:
        """Every version number that has an attachments folder (a listing, no reads)."""
        folder = self.model(name) / "attachments"
        if not folder.is_dir():
            return []
        return sorted(int(e.name) for e in folder.iterdir() if is_count(e.name))

    def numbers(self, name: str) -> list[int]:
        """Every claimed version number, committed or not (a listing, no reads)."""
        try:
            return [int(e.name) for e in self.versions(name).iterdir() if is_count(e.name)]
        except FileNotFoundError:
            return []
