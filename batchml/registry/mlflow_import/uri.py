"""What an import URI names, checked before MLflow is asked to open it.

MLflow creates what it does not find and repairs what it does not know: a
SQLite path with a typo becomes an empty database, a database of another
program gets MLflow's tables added, a file store gets a ``models/`` folder,
and a server that does not answer is retried for minutes. So a local store
must exist and look like MLflow's (read only: SQLite is opened read-only),
and a server must answer once, before the import starts.
"""

from __future__ import annotations

import contextlib
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from batchml.errors import InvalidValue
from batchml.registry.mlflow_import.source import Source
from batchml.registry.registry_errors import NotFound, RegistryError

SERVER_TIMEOUT_S = 10
MLFLOW_TABLE = "registered_models"  # in every MLflow database since the model registry


def open_source(uri: str) -> Source:
    """Check ``uri`` and say what kind of store it names; nothing is created or changed."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("", "file"):
        return _file_store(Path(parts.path if scheme else uri).expanduser().absolute())
    if scheme == "sqlite":
        raw = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else ""
        return _sqlite(Path(raw).absolute() if raw else None, uri)
    if scheme in ("http", "https"):
        source = Source(uri.rstrip("/"), _without_password(uri).rstrip("/"), "server")
        _check_answers(source)
        return source
    if "+" in scheme or scheme in ("postgresql", "mysql", "mssql"):
        return Source(uri, _without_password(uri), "database")
    raise InvalidValue(
        f"{uri!r} is not an MLflow store URI batchml reads",
        hint="give a file store folder (mlruns), sqlite:///PATH, a database URI "
        "(postgresql://...) or a server (http://host:port)",
    )


def _file_store(path: Path) -> Source:
    if not path.is_dir():
        raise NotFound(
            f"{path} is not a folder: no MLflow file store there",
            hint="give the mlruns folder, a sqlite:/// URI or an http(s):// server",
        )
    if not (path / "models").is_dir():
        raise NotFound(
            f"{path} holds no registered models (no models/ folder)",
            hint="give the folder that MLflow's tracking URI named (the one holding models/)",
        )
    return Source(path.as_uri(), path.as_uri(), "file")


def _sqlite(path: Path | None, uri: str) -> Source:
    """A SQLite file that holds MLflow's tables, read-only to find out."""
    if path is None or not path.is_file():
        raise NotFound(
            f"no SQLite database at {path or repr(uri)}",
            hint="write sqlite:///relative/path.db or sqlite:////absolute/path.db "
            "(MLflow would create an empty database there)",
        )
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise NotFound(
            f"{path} cannot be read as a SQLite database: {exc}",
            hint="check the path; MLflow's database is the file its tracking URI named",
        ) from None
    if MLFLOW_TABLE not in tables:
        raise NotFound(
            f"{path} is a SQLite database without MLflow's tables (no {MLFLOW_TABLE})",
            hint="give the database MLflow's tracking URI named (MLflow would add its tables "
            "to this one)",
        )
    return Source(f"sqlite:///{path}", f"sqlite:///{path}", "sqlite")


def _check_answers(source: Source) -> None:
    """One request to the server's health page: an answer of any kind will do."""
    try:
        with urllib.request.urlopen(f"{source.uri}/health", timeout=SERVER_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # something answers; MLflow's own requests say what, if it is not MLflow
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        raise RegistryError(
            f"no MLflow server answers at {source.shown} ({why})",
            hint="start it, or check host and port: 'curl URL/health' answers OK when it runs",
        ) from None


def _without_password(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc + (f":{parts.port}" if parts.port else "")))
