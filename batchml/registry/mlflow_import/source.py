"""Reading an MLflow tracking and registry store through MLflow's own client, and nothing else.

MLflow knows its stores (file store, SQLAlchemy databases, servers over HTTP);
this module only asks its public client for registered models, versions,
aliases, runs and model folders, and hands back plain dataclasses, so the rest
of the import never touches MLflow objects.

MLflow 3.13 and later refuse to open a file store (``./mlruns``) unless
``MLFLOW_ALLOW_FILE_STORE=true`` is set; such stores are exactly what users
move away from, so while this module reads a file store (and only then) it
sets that variable, restoring the previous value after each read. MLflow
keeps process-wide settings that some of its stores consult whatever client
asks, so a read sets them too, and puts them back (``Source.reading``). MLflow
creates what it does not find (an empty database for a SQLite path with a
typo, a ``models/`` folder in a file store), so local sources must exist
before MLflow is asked to open them; the import itself only reads (MLflow's
file store adds an empty ``.trash`` folder where it finds none).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from batchml.errors import BatchmlError, InvalidValue
from batchml.registry.registry_errors import NotFound, RegistryError

INSTALL = "pip install 'batchml[mlflow]'"
ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
PROGRESS_BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")  # set_tracking_uri sets them
Kind = Literal["file", "sqlite", "database", "server"]


@dataclass(frozen=True)
class SourceRun:
    """The run that logged a model version: what it measured and where it belongs."""

    run_id: str
    experiment_id: str
    experiment_name: str | None
    run_name: str | None
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    datasets: list[dict[str, Any]]


@dataclass(frozen=True)
class SourceVersion:
    """One registered model version as MLflow holds it (``stage``: 'None' when it has none)."""

    model: str
    version: int
    description: str
    tags: dict[str, str]
    stage: str
    status: str
    source: str
    run_id: str | None
    user_id: str | None
    created: str | None
    run: SourceRun | None


@dataclass(frozen=True)
class SourceModel:
    """A registered model: its notes, its aliases ({alias: version}) and its versions."""

    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    versions: list[SourceVersion] = field(default_factory=list)


def mlflow_module() -> Any:
    """``mlflow``, imported only when an import runs; the install command if it is missing."""
    try:
        import mlflow
    except ImportError as exc:
        raise BatchmlError(
            f"importing from MLflow needs the mlflow package ({exc})", hint=f"install it: {INSTALL}"
        ) from None
    return mlflow


@dataclass(frozen=True)
class Source:
    """An MLflow store named by ``uri``: a file store, a database URI or a server URL."""

    uri: str  # as MLflow takes it
    shown: str  # as lineage records it: absolute, without any password
    kind: Kind

    @contextlib.contextmanager
    def reading(self, what: str = "") -> Iterator[Any]:
        """An MLflow client for this store, with MLflow set up for this read only.

        ``what`` names what is being read, for the error message.

        MLflow's file store looks up logged models through the process-wide
        tracking URI, whatever client asks (or opens ./mlflow.db), so that URI
        and the registry URI name this store during the read; MLflow's own
        download progress bars are off (the import shows its own), and for a
        file store its opt-in is set. All of it is put back after.
        """
        mlflow = mlflow_module()
        settings = {PROGRESS_BARS: "false"}
        if self.kind == "file":
            settings[ALLOW_FILE_STORE] = "true"
        saved = {key: os.environ.get(key) for key in URI_VARIABLES}
        with _environment(settings, keep=URI_VARIABLES):
            mlflow.set_tracking_uri(self.uri)
            mlflow.set_registry_uri(self.uri)
            try:
                yield mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            except _read_errors(mlflow) as exc:
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                raise RegistryError(
                    f"MLflow could not read {what or 'the store'} at {self.shown}: "
                    + " ".join(str(message).split())[:600],
                    hint="the store is damaged or is not MLflow's: 'mlflow ui --backend-store-uri "
                    "URI' shows what MLflow itself reads there; to import the other models, "
                    "name them with --model",
                ) from None
            finally:  # an unset URI is unset again (MLflow then resolves its default)
                mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
                mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])

    def models(self, wanted: list[str]) -> list[SourceModel]:
        """The registered models named in ``wanted`` (all when empty), each with its versions."""
        with self.reading("the registered models") as client:
            found = _paged(client.search_registered_models)
            names = [m.name for m in found]
            missing = [name for name in wanted if name not in names]
            if missing:
                raise NotFound(
                    f"{self.shown} has no registered model {', '.join(map(repr, missing))}",
                    hint=f"its registered models: {', '.join(map(repr, names)) or 'none'}",
                )
            return [
                self._model(client, model) for model in found if not wanted or model.name in wanted
            ]

    def _model(self, client: Any, model: Any) -> SourceModel:
        versions = [
            self._version(client, v)
            for v in _paged(client.search_model_versions, _by_name(model.name))
        ]
        return SourceModel(
            name=model.name,
            description=model.description or "",
            tags=dict(model.tags or {}),
            aliases={alias: int(v) for alias, v in (model.aliases or {}).items()},
            versions=sorted(versions, key=lambda v: v.version),
        )

    def _version(self, client: Any, found: Any) -> SourceVersion:
        return SourceVersion(
            model=found.name,
            version=int(found.version),
            description=found.description or "",
            tags=dict(found.tags or {}),
            stage=found.current_stage or "None",
            status=found.status or "READY",
            source=found.source or "",
            run_id=found.run_id or None,
            user_id=found.user_id or None,
            created=_iso(found.creation_timestamp),
            run=_run(client, found.run_id) if found.run_id else None,
        )

    def download(self, version: SourceVersion, folder: Path) -> Path:
        """The version's MLflow model folder, copied whole into ``folder``; returns its path.

        The version's artifact location is asked of this store's client: MLflow's
        ``models:/`` URIs would be resolved against the process's global
        registry URI instead (and open or create a database in the working folder).
        """
        mlflow = mlflow_module()
        with self.reading(f"the model files of {version.model}/{version.version}") as client:
            location = client.get_model_version_download_uri(version.model, str(version.version))
            if location.startswith(
                "models:/"
            ):  # an MLflow 3 logged model the store did not resolve
                model_id = location.removeprefix("models:/").split("/")[0]
                location = client.get_logged_model(model_id).artifact_location
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(folder), tracking_uri=self.uri
            )
        return Path(local)


@contextlib.contextmanager
def _environment(settings: dict[str, str], keep: tuple[str, ...] = ()) -> Iterator[None]:
    """Environment variables set for a while, then put back as they were (``keep``: too)."""
    previous = {key: os.environ.get(key) for key in (*settings, *keep)}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _read_errors(mlflow: Any) -> tuple[type[BaseException], ...]:
    """What MLflow's stores raise on damaged files and databases, besides its own exception.

    The file store lets a malformed meta.yaml's YAML error through, and the
    SQLAlchemy store a database driver's; anything else is a bug, and shows as one.
    """
    import yaml

    errors: tuple[type[BaseException], ...] = (
        mlflow.exceptions.MlflowException, yaml.YAMLError, OSError
    )  # fmt: skip
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # mlflow-skinny: no database stores
        return errors
    return (*errors, SQLAlchemyError)


def _paged(search: Any, filter_string: str | None = None) -> list[Any]:
    """Every result of an MLflow search, following its page tokens."""
    found: list[Any] = []
    token = None
    while True:
        page = search(filter_string=filter_string, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def _by_name(name: str) -> str:
    quote = "'" if "'" not in name else '"'
    if quote in name:
        raise InvalidValue(
            f"registered model name {name!r} holds both kinds of quotes",
            hint="rename it in MLflow (MLflow's search cannot name it)",
        )
    return f"name = {quote}{name}{quote}"


def _iso(milliseconds: int | None) -> str | None:
    if not milliseconds:
        return None
    return datetime.fromtimestamp(milliseconds / 1000, timezone.utc).isoformat()


def _run(client: Any, run_id: str) -> SourceRun | None:
    """The run's metrics (latest value each), parameters, tags and datasets; None if gone."""
    mlflow = mlflow_module()
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return None  # a run deleted for good: the version still stands
    try:
        experiment = client.get_experiment(run.info.experiment_id).name
    except mlflow.exceptions.MlflowException:
        experiment = None
    inputs = getattr(run, "inputs", None)
    datasets = [
        {"name": d.dataset.name, "digest": d.dataset.digest,
         "source_type": d.dataset.source_type, "source": d.dataset.source}
        for d in (getattr(inputs, "dataset_inputs", None) or [])
    ]  # fmt: skip
    return SourceRun(
        run_id=run.info.run_id,
        experiment_id=str(run.info.experiment_id),
        experiment_name=experiment,
        run_name=run.info.run_name,
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        tags=dict(run.data.tags),
        datasets=datasets,
    )
