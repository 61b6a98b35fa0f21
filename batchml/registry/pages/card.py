"""A model card: what a reviewer or a future analyst needs to know about one version, on one page.

Everything on it comes from what the registry already holds: the notes
(description, intended use, limitations), the record (signature, preprocessing,
metrics, parameters, lineage) and the attachments (a package's validation and
latency tables). What nobody wrote down is shown as an open field saying how to
fill it, rather than left out, so a reviewer sees what is missing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from batchml.registry.manifest import FILES
from batchml.registry.pages.document import Document, Section, Table
from batchml.registry.registry_errors import CorruptVersion, DamagedFile
from batchml.registry.version import ModelVersion

_DATA_FIRST = ("url", "name", "size", "events", "sha256", "checksum", "digest")
_OPEN = "Not written yet: add it with 'batchml registry annotate {ref} --{option} TEXT'."
_BENCH_COLUMNS = (("intra_op_threads", "threads"), ("batch", "batch"), ("p50_ms", "p50 ms"),
                  ("p90_ms", "p90 ms"), ("p99_ms", "p99 ms"), ("rows_per_s", "rows/s"))  # fmt: skip


def model_card(version: ModelVersion, aliases: Sequence[str], *, hashed: bool) -> Document:
    """The card of ``version``; ``hashed`` says whether its files were checked when it was read.

    A card for a page of many (the browsable registry) reads attachments without
    hashing them; ``batchml registry card`` hashes everything first.
    """
    notes = version.annotations
    ref = version.uri.removeprefix("batchml:")
    facts: list[tuple[str, Any]] = [
        ("model", version.uri),
        ("digest", f"sha256:{version.digest}"),
        ("created", str(version.manifest.get("created", ""))),
        ("aliases", ", ".join(aliases) or "none"),
        ("tags", ", ".join(notes.get("tags", [])) or "none"),
        (
            "files",
            "every file hashed against the manifest when this card was made"
            if hashed
            else "not hashed for this page: 'batchml registry verify' checks them",
        ),
    ]
    sections = [
        Section(
            "Description and intended use",
            [
                _note(notes, "description", ref, "No description."),
                "Intended use: " + _note(notes, "intended_use", ref, ""),
            ],
        ),
        Section("Inputs", _inputs(version)),
        Section("Training data", _data(version.lineage)),
        Section("How it was chosen", _choice(version)),
        Section("Metrics", [_mapping(("metric", "value"), version.metrics)]),
        Section("Lineage", _lineage(version.lineage)),
        Section("Packages", _packages(version, hashed)),
        Section("Limitations", [_note(notes, "limitations", ref, "")]),
    ]
    return Document(f"{version.name} version {version.version}", facts, sections)


def _note(notes: Mapping[str, Any], key: str, ref: str, missing: str) -> str:
    text = notes.get(key)
    if isinstance(text, str) and text.strip():
        return text
    return missing or _OPEN.format(ref=ref, option=key.replace("_", "-"))


def show(value: Any) -> str:
    """A value as a reader wants it: numbers short, structures as compact JSON."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _mapping(header: tuple[str, str], values: Mapping[str, Any]) -> Table | str:
    if not values:
        return "None recorded."
    return Table(header, [(str(k), show(v)) for k, v in values.items()])


def _inputs(version: ModelVersion) -> list[Any]:
    inputs = version.signature.get("inputs") or []
    if not inputs:
        return ["No signature: the version was published without an input example."]
    prep = dict(version.manifest.get("preprocessing") or {})
    stats = prep.pop("features", {}) if isinstance(prep.get("features"), dict) else {}
    count = prep.pop("count", None)
    prep.pop("format_version", None)
    blocks: list[Any] = [
        Table(
            ("input", "dtype", "shape"), [(i["name"], i["dtype"], show(i["shape"])) for i in inputs]
        )
    ]
    rows = [
        (i["name"], var, *(show(stats.get(var, {}).get(k)) for k in ("mean", "std", "min", "max")))
        for i in inputs
        for var in i.get("variables", [])
    ]
    if rows:
        where = f" (statistics of {count:,} training events)" if isinstance(count, int) else ""
        caption = f"Variables and their normalisation{where}"
        blocks.append(Table(("input", "variable", "mean", "std", "min", "max"), rows, caption))
    if prep:
        blocks.append(Table(None, [(k, show(v)) for k, v in prep.items()], "Other preprocessing"))
    return blocks


def _data(lineage: Mapping[str, Any]) -> list[Any]:
    entries = [e if isinstance(e, dict) else {"url": e} for e in lineage.get("data") or []]
    if not entries:
        return ["Not recorded: publish with lineage={'data': [{'url': ..., 'size': ...}]}."]
    found = list(dict.fromkeys(k for e in entries for k in e))
    columns = [k for k in _DATA_FIRST if k in found] + [k for k in found if k not in _DATA_FIRST]
    return [Table(columns, [tuple(show(e.get(c)) for c in columns) for e in entries])]


def _choice(version: ModelVersion) -> list[Any]:
    lineage = version.lineage
    run = _dict(lineage.get("hpo_run"))
    facts = [
        ("study", lineage.get("hpo_study")),
        ("trial", lineage.get("hpo_trial")),
        ("objective value", version.metrics.get("objective")),
        ("site", lineage.get("site")),
        ("trained on", run.get("host")),
        ("devices", run.get("devices")),
        ("attempt", run.get("attempt")),
        ("trials in the study", run.get("trials_in_study")),
    ]
    blocks: list[Any] = []
    if any(v is not None for _, v in facts):
        blocks.append(Table(None, [(k, show(v)) for k, v in facts if v is not None]))
    source = lineage.get("imported_from")
    if isinstance(source, dict):
        blocks.append(_imported(source))
    if not blocks:
        blocks.append("Not recorded: no study, trial or import is named in the lineage.")
    blocks.append(_mapping(("parameter", "value"), version.params))
    return blocks


def _imported(source: Mapping[str, Any]) -> Table:
    """Where an imported version came from, one fact a row (empty ones left out)."""
    model = _dict(source.get("registered_model"))
    facts = [
        ("from", f"{source.get('system', '?')} at {source.get('uri', '?')}"),
        ("model and version", f"{source.get('model')} version {source.get('version')}"),
        (
            "run",
            f"{source.get('run_id')} ({source.get('run_name')})" if source.get("run_id") else None,
        ),
        (
            "experiment",
            f"{source.get('experiment_name')} (id {source.get('experiment_id')})"
            if source.get("experiment_id")
            else None,
        ),
        ("stage", source.get("stage") if source.get("stage") not in (None, "None") else None),
        ("created there", source.get("created")),
        ("by", source.get("user_id")),
        ("artifacts", source.get("source")),
        ("version tags", _pairs(source.get("version_tags"))),
        ("model tags", _pairs(model.get("tags"))),
        ("model description", model.get("description")),
        ("run tags", _pairs(source.get("run_tags"))),
        *[(f"conversion: {k}", v) for k, v in (source.get("conversion") or {}).items()],
    ]
    return Table(None, [(k, show(v)) for k, v in facts if v], "Imported from")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pairs(values: Any) -> str | None:
    if not isinstance(values, dict) or not values:
        return None
    return "; ".join(f"{k}={v}" for k, v in sorted(values.items()))


def _lineage(lineage: Mapping[str, Any]) -> list[Any]:
    commit = lineage.get("git_commit")
    dirty = " (uncommitted changes)" if lineage.get("git_dirty") else ""
    facts = [
        ("published by", f"{lineage.get('user', '?')} on {lineage.get('host', '?')}"),
        ("time", lineage.get("time")),
        ("git commit", f"{commit}{dirty}" if commit else None),
        ("batch jobs", ", ".join(lineage.get("job_ids") or []) or None),
    ]
    blocks: list[Any] = [Table(None, [(k, show(v)) for k, v in facts])]
    blocks.append(_mapping(("package", "version"), lineage.get("packages") or {}))
    return blocks


def _packages(version: ModelVersion, hashed: bool) -> list[Any]:
    blocks: list[Any] = []
    for kind in version.attachments():
        try:
            folder = version.attachment(kind).folder if hashed else _unhashed(version, kind)
        except CorruptVersion as exc:
            blocks.append(f"{kind}: damaged: {exc.message}")
            continue
        blocks += _package(kind, folder)
    ref = version.uri.removeprefix("batchml:")
    return blocks or [f"No package attached: 'batchml package build {ref} -o DIR --publish'."]


def _unhashed(version: ModelVersion, kind: str) -> Path:
    return version.layout.attachment(version.name, version.version, kind) / FILES


def _package(kind: str, folder: Path) -> list[Any]:
    blocks: list[Any] = []
    try:
        report = json.loads((folder / "validation.json").read_text())
    except (OSError, ValueError):
        report = None
    if isinstance(report, dict):
        facts = [_validation(name, r) for name, r in report.items() if isinstance(r, dict)]
        blocks.append(Table(None, facts, f"{kind}: validation against torch"))
    else:
        blocks.append(f"{kind}: no validation.json")
    try:
        with open(folder / "benchmark.csv", newline="") as f:
            points = list(csv.DictReader(f))
    except (OSError, csv.Error, DamagedFile):
        points = []
    if points:
        rows = [tuple(show(_number(p.get(key))) for key, _ in _BENCH_COLUMNS) for p in points]
        blocks.append(Table([label for _, label in _BENCH_COLUMNS], rows, f"{kind}: latency"))
    return blocks


def _validation(name: str, report: Mapping[str, Any]) -> tuple[str, str]:
    verdict = "passed" if report.get("passed") else "FAILED"
    rule = show(report.get("tolerance", {}).get("rule"))
    return f"{name}: {verdict}", f"max |onnx - torch| {show(report.get('max_abs'))}; {rule}"


def _number(text: str | None) -> Any:
    try:
        return float(text) if text is not None and "." in text else int(text or "")
    except ValueError:
        return text
