"""``import_mlflow``: every registered model version of an MLflow store, as batchml versions.

Each MLflow version becomes one batchml version through ``Registry.publish``,
so each is all or nothing: its files, record, notes and aliases appear
together or not at all, and an import stopped half way leaves only whole
versions, which the next run recognises. A version is recognised by the
lineage it was published with (``imported_from``: the source URI, the MLflow
model and version), so importing again publishes nothing twice. What the
import copied from the source is kept in that lineage too; when the source
says something else now (a new description, a tag, a stage, a metric), the
version is reported as changed and left as it is: batchml versions are
immutable, and the user decides. Aliases and the legacy stages Production and
Staging (as aliases ``stage-production`` and ``stage-staging``, on the newest
version in that stage, as MLflow resolves ``models:/NAME/Production``) are
set where batchml has no such alias yet; one that points elsewhere is
reported, never moved.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchml.errors import InvalidValue
from batchml.registry.mlflow_import.convert import convert
from batchml.registry.mlflow_import.source import Source, SourceModel, SourceVersion
from batchml.registry.mlflow_import.uri import open_source
from batchml.registry.names import check_alias, check_name
from batchml.registry.registry_errors import BadReference
from batchml.registry.store import Registry
from batchml.registry.version import ModelVersion

STAGES = ("Production", "Staging")
COMPARED = ("description", "version_tags", "stage", "source", "run_id", "metrics", "params")
Progress = Callable[[int, int, str], None]  # versions done, versions in all, the current one


@dataclass(frozen=True)
class Imported:
    source: str  # NAME/N in MLflow
    uri: str  # batchml:NAME/N
    how: dict[str, str]


@dataclass(frozen=True)
class Changed:
    source: str
    uri: str
    fields: list[str]  # what the source says differently now


@dataclass(frozen=True)
class AliasNote:
    """An alias batchml already has elsewhere: reported, not moved."""

    name: str
    alias: str
    wanted: int  # the batchml version the source's alias or stage names
    found: int


@dataclass
class ImportReport:
    source: str
    imported: list[Imported] = field(default_factory=list)
    unchanged: list[tuple[str, str]] = field(default_factory=list)
    changed: list[Changed] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # source, why
    aliases_set: list[tuple[str, str, int]] = field(default_factory=list)  # name, alias, version
    alias_conflicts: list[AliasNote] = field(default_factory=list)


def import_mlflow(
    registry: Registry | str | os.PathLike[str],
    uri: str,
    models: Sequence[str] = (),
    progress: Progress | None = None,
) -> ImportReport:
    """Import the registered models of the MLflow store ``uri`` (``models``: only these).

    An entry of ``models`` is an MLflow name, or ``MLFLOW_NAME=batchml-name``
    to import it under another name. The source, every name and every alias
    are checked before anything is written; a registry folder given as a path
    is created only then.
    """
    source = open_source(uri)
    targets = _targets(models)
    found = source.models(list(targets))
    plans = [_Plan.of(model, targets.get(model.name, model.name)) for model in found]
    registry = registry if isinstance(registry, Registry) else Registry(registry)
    report = ImportReport(source.shown)
    total = sum(len(plan.model.versions) for plan in plans)
    done = 0
    for plan in plans:
        previous = _imported(registry, plan, source.shown)
        numbers = {n: v.version for n, v in previous.items()}
        for version in plan.model.versions:
            label = f"{plan.model.name}/{version.version}"
            if progress:
                progress(done, total, label)
            if version.status != "READY":
                report.skipped.append((label, f"its MLflow status is {version.status}"))
            elif version.version in previous:
                _compare(report, label, previous[version.version], _snapshot(source, version))
            else:
                wanted = _free_aliases(registry, plan, version.version)
                new = _publish(registry, source, plan, version, wanted)
                numbers[version.version] = new.version
                report.imported.append(Imported(label, new.uri, _how(new, version)))
                report.aliases_set += [(plan.name, a, new.version) for a in wanted]
            done += 1
        _set_aliases(registry, plan, numbers, report)
    if progress:
        progress(done, total, "")
    return report


def _targets(models: Sequence[str]) -> dict[str, str]:
    """{MLflow name: batchml name} from NAME or NAME=BATCHML_NAME entries."""
    targets = {}
    for entry in models:
        name, _, target = entry.partition("=")
        targets[name] = target or name
    return targets


@dataclass(frozen=True)
class _Plan:
    model: SourceModel
    name: str  # in batchml
    aliases: dict[str, int]  # batchml alias -> MLflow version

    @classmethod
    def of(cls, model: SourceModel, name: str) -> _Plan:
        try:
            check_name(name)
        except BadReference as exc:
            raise BadReference(
                f"MLflow model {model.name!r} cannot keep its name in batchml: {exc.message}",
                hint=f"import it under another name: --model '{model.name}=NEW-NAME'",
            ) from None
        aliases = dict(model.aliases)
        for stage in STAGES:
            numbers = [v.version for v in model.versions if v.stage == stage]
            if numbers:
                aliases[f"stage-{stage.lower()}"] = max(numbers)
        for alias in aliases:
            try:
                check_alias(alias)
            except BadReference as exc:
                raise BadReference(
                    f"MLflow alias {alias!r} of {model.name!r} is not a valid batchml alias: "
                    f"{exc.message}",
                    hint="rename the alias in MLflow (set_registered_model_alias), then import",
                ) from None
        return cls(model, name, aliases)


def _imported(registry: Registry, plan: _Plan, uri: str) -> dict[int, ModelVersion]:
    """{MLflow version: batchml version} of what earlier imports of this source published."""
    found: dict[int, ModelVersion] = {}
    for version in registry.list(plan.name):
        origin = version.lineage.get("imported_from")
        if (
            isinstance(origin, dict)
            and origin.get("uri") == uri
            and (origin.get("model") == plan.model.name)
        ):
            found.setdefault(int(origin["version"]), version)
    return found


def _snapshot(source: Source, version: SourceVersion) -> dict[str, Any]:
    """What the import copies from the source, as compared on the next import."""
    run = version.run
    return {
        "description": version.description,
        "version_tags": version.tags,
        "stage": version.stage,
        "source": version.source,
        "run_id": version.run_id,
        "metrics": run.metrics if run else {},
        "params": run.params if run else {},
    }


def _compare(report: ImportReport, label: str, existing: ModelVersion, now: dict[str, Any]) -> None:
    origin = existing.lineage["imported_from"]
    then = {**origin, "metrics": existing.metrics, "params": existing.params}
    differ = [key for key in COMPARED if _canonical(then.get(key)) != _canonical(now[key])]
    if differ:
        report.changed.append(Changed(label, existing.uri, differ))
    else:
        report.unchanged.append((label, existing.uri))


def _canonical(value: Any) -> str:
    """JSON text: NaN equals NaN, and 1 equals 1.0 as the registry stores metrics as floats."""
    if isinstance(value, dict):
        value = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                 for k, v in value.items()}  # fmt: skip
    return json.dumps(value, sort_keys=True)


def _free_aliases(registry: Registry, plan: _Plan, mlflow_version: int) -> list[str]:
    """The aliases the source puts on this version that batchml does not have yet."""
    existing = registry.aliases(plan.name)
    return sorted(a for a, v in plan.aliases.items() if v == mlflow_version and a not in existing)


def _set_aliases(
    registry: Registry, plan: _Plan, numbers: dict[int, int], report: ImportReport
) -> None:
    """Aliases whose version was imported before: set where free, reported where taken."""
    if not numbers:
        return
    existing = registry.aliases(plan.name)
    for alias, mlflow_version in sorted(plan.aliases.items()):
        wanted = numbers.get(mlflow_version)
        if wanted is None:  # its version was skipped
            continue
        found = existing.get(alias)
        if found is None:
            registry.alias(plan.name, alias, wanted, expect=None)
            report.aliases_set.append((plan.name, alias, wanted))
        elif found != wanted:
            report.alias_conflicts.append(AliasNote(plan.name, alias, wanted, found))


def _publish(
    registry: Registry, source: Source, plan: _Plan, version: SourceVersion, aliases: list[str]
) -> ModelVersion:
    """Download, convert and publish one version (with its aliases), all or nothing."""
    scratch = Path(tempfile.mkdtemp(prefix="batchml-mlflow-"))  # private (0700)
    try:
        folder = source.download(version, scratch / "model")
        converted = convert(folder)
        run = version.run
        origin = {
            "system": "mlflow",
            "uri": source.shown,
            "model": version.model,
            "version": version.version,
            "run_id": version.run_id,
            "experiment_id": run.experiment_id if run else None,
            "experiment_name": run.experiment_name if run else None,
            "run_name": run.run_name if run else None,
            "user_id": version.user_id,
            "created": version.created,
            "description": version.description,
            "version_tags": version.tags,
            "stage": version.stage,
            "source": version.source,
            "run_tags": run.tags if run else {},
            "registered_model": {"description": plan.model.description, "tags": plan.model.tags},
            "conversion": converted.how,
        }
        return registry.publish(
            plan.name,
            converted.model,
            files=converted.files,
            input_example=converted.input_example,
            variables=converted.variables,
            metrics=run.metrics if run else {},
            params=run.params if run else {},
            lineage={
                "imported_from": origin,
                "git_commit": (run.tags.get("mlflow.source.git.commit") if run else None),
                "git_dirty": None,
                "site": None,
                "job_ids": [],
                "data": run.datasets if run else [],
            },
            description=version.description or None,
            aliases=aliases,
        )
    except InvalidValue as exc:
        raise InvalidValue(
            f"MLflow version {version.model}/{version.version} cannot be published: {exc.message}",
            hint=exc.hint,
        ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _how(version: ModelVersion, source: SourceVersion) -> dict[str, str]:
    """How the version was converted: the export's failure, a source run that is gone."""
    how = dict(version.lineage["imported_from"].get("conversion", {}))
    error = version.manifest.get("model", {}).get("exported_error")
    if error:
        how["program"] = f"no torch.export program: {error}"
    if source.run_id and source.run is None:
        how["run"] = (
            f"run {source.run_id} is not in the store (deleted for good): imported without "
            "its metrics, parameters and tags"
        )
    return how
