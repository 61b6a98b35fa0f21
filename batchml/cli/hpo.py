"""`batchml hpo run|resume|status|best`: searches from a YAML file, watched and resumed by name."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from batchml.cli.terminal_text import safe

CONFIG_ATTR = "batchml.config"


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hpo = groups.add_parser("hpo", help="hyper-parameter searches on a site's GPUs")
    commands = hpo.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    p = commands.add_parser("run", help="run the study a YAML file describes")
    p.add_argument("config", type=Path)
    p.set_defaults(handler=cmd_run)
    for name, handler, text in (
        ("report", cmd_report, "one HTML page: plots, slot timeline, best trial"),
        ("resume", cmd_resume, "continue a study whose driver stopped, up to its n_trials"),
        ("status", cmd_status, "counts by state, best so far, trials per hour, I/O-bound trials"),
        ("best", cmd_best, "the best trial's value and parameters"),
    ):
        p = commands.add_parser(name, help=text)
        p.add_argument("study")
        p.add_argument("--storage", default=None, help="journal path or DB URL (default: by name)")
        if name == "best":
            p.add_argument("--json", action="store_true", help="machine-readable")
        if name == "report":
            p.add_argument("-o", "--output", type=Path, default=Path("report.html"))
        p.set_defaults(handler=handler)


def cmd_run(args: argparse.Namespace, out: Console) -> int:
    from batchml.hpo.config import load_config

    config = load_config(args.config)
    stored = {**config.model_dump(mode="json"), "base": str(args.config.resolve().parent)}
    return _run(stored, out)


def _run(stored: dict[str, Any], out: Console) -> int:
    from batchml.config.site_lookup import load_site
    from batchml.hpo.config import objective_of
    from batchml.hpo.interrupts import StudyInterrupted, StudyTerminated
    from batchml.hpo.sites import overrides_of, site_plan
    from batchml.hpo.spec import Where

    config = _stored_config(stored)
    objective = objective_of(config, Path(stored["base"]))
    sites = overrides_of(config.sites)
    if sites is None:
        load_site(config.site)  # a bad site is named before the search is set up
    else:  # each site and its overrides, checked as run_study checks them, named by field
        where = Where(gpus_per_trial=config.gpus_per_trial, trials_per_job=config.trials_per_job,
                      max_jobs=config.max_jobs, sites=sites)  # fmt: skip
        site_plan(where, source=f"study {config.study_name!r}")

    from batchml.hpo import run_study

    try:
        study = run_study(
            objective,
            config.distributions(),
            n_trials=config.n_trials,
            site=config.site,
            sites=sites,
            gpus_per_trial=config.gpus_per_trial,
            gpu_memory_per_trial=config.gpu_memory_per_trial,
            trials_per_job=config.trials_per_job,
            max_jobs=config.max_jobs,
            direction=config.direction,
            sampler=config.sampler.build(),
            pruner=config.pruner.build(),
            study_name=config.study_name,
            storage=config.storage,
            max_retries=config.max_retries,
            study_attrs={CONFIG_ATTR: stored},
        )
    except (StudyInterrupted, StudyTerminated) as stopped:
        _print_resume(stopped.stop.describe(), config, out)
        return stopped.stop.exit_code
    _print_best(study, out)
    return 0


def _stored_config(stored: Any) -> Any:
    """The study file a study was run with, as `hpo run` stored it; ConfigError if it is damaged."""
    from pydantic import ValidationError

    from batchml.config.yaml_files import field_problem
    from batchml.errors import ConfigError, FieldProblem
    from batchml.hpo.config import STUDY_FILE_HINT, StudyConfig

    name = stored.get("study_name") if isinstance(stored, dict) else None
    where = f"the configuration stored in study {name!r}"
    if not isinstance(stored, dict) or not isinstance(stored.get("base"), str):
        fix = "run the study again from its YAML file with batchml hpo run"
        problem = FieldProblem("base", "missing or not a folder path", fix)
        raise ConfigError(where, [problem], hint=STUDY_FILE_HINT)
    try:
        return StudyConfig(**{k: v for k, v in stored.items() if k != "base"})
    except ValidationError as exc:
        problems = [field_problem(e, StudyConfig, {}, top=where) for e in exc.errors()]
        raise ConfigError(where, problems, hint=STUDY_FILE_HINT) from None


def _print_resume(what: str, config: Any, out: Console) -> None:
    """After an interrupt: what happened, and the command that carries on."""
    command = ["batchml", "hpo", "resume", config.study_name]
    if config.storage:
        command += ["--storage", config.storage]
    err = Console(stderr=True, no_color=out.no_color or None, highlight=False, soft_wrap=True)
    err.print(f"{safe(what)}\nresume with: {safe(shlex.join(command))}")


def _load(args: argparse.Namespace) -> Any:
    import optuna

    from batchml.errors import InvalidValue
    from batchml.hpo.storage import open_existing_storage, study_exists

    storage = open_existing_storage(args.storage, args.study)
    if not study_exists(storage, args.study):
        raise InvalidValue(
            f"no study named {args.study!r} in {args.storage or 'the default journal folder'}",
            hint="check the name, or pass --storage with the journal path or database URL",
        )
    return optuna.load_study(study_name=args.study, storage=storage)


def cmd_resume(args: argparse.Namespace, out: Console) -> int:
    from batchml.errors import InvalidValue

    study = _load(args)
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        raise InvalidValue(
            f"study {args.study!r} was not started by `batchml hpo run`: its objective is unknown",
            hint="call batchml.hpo.run_study again with the same study_name: it resumes",
        )
    if args.storage and isinstance(stored, dict):
        stored = {**stored, "storage": args.storage}
    return _run(stored, out)


def cmd_status(args: argparse.Namespace, out: Console) -> int:
    from optuna.trial import TrialState

    from batchml.hpo.gpu_samples import status_lines as gpu_status_lines
    from batchml.hpo.io_profile import status_lines
    from batchml.hpo.outcome import FAILURES, JOBS_REPLACED_ATTR, OUTCOME_ATTR, has_ended

    study = _load(args)
    trials = study.get_trials(deepcopy=False)
    table = Table("state", "trials", box=None, pad_edge=False)
    for state in TrialState:
        count = sum(t.state == state for t in trials)
        if count:
            table.add_row(state.name.lower(), str(count))
    for kind in FAILURES:
        count = sum(t.user_attrs.get(OUTCOME_ATTR) == kind.value for t in trials)
        if count:
            table.add_row(f"  of which {kind.value}", str(count))
    out.print(table)
    total = (study.user_attrs.get(CONFIG_ATTR) or {}).get("n_trials", "?")
    out.print(f"ended {sum(has_ended(t) for t in trials)} of {safe(total)}")
    replaced = study.user_attrs.get(JOBS_REPLACED_ATTR, 0)
    if replaced:
        out.print(f"{replaced} worker job(s) ended early and were replaced")
    _print_sites(study, trials, out)
    for line in [*status_lines(trials), *gpu_status_lines(trials)]:
        out.print(safe(line))
    finished = [t for t in trials if t.state == TrialState.COMPLETE and t.datetime_complete]
    if finished:
        start = min(t.datetime_start for t in trials if t.datetime_start)
        hours = (max(t.datetime_complete for t in finished) - start).total_seconds() / 3600
        out.print(f"{len(finished) / hours:.1f} trials per hour" if hours > 0 else "")
        _print_best(study, out)
    return 0


def _print_sites(study: Any, trials: list[Any], out: Console) -> None:
    """The counts, slots and state of each site, for a study run on several."""
    from batchml.hpo.by_site import HEADER, several, site_rows
    from batchml.hpo.outcome import SITES_ATTR

    states = study.user_attrs.get(SITES_ATTR) or {}
    if not several(trials, states):
        return
    table = Table(*HEADER, box=None, pad_edge=False)
    for row in site_rows(trials, states):
        table.add_row(*(safe(cell) for cell in row))
    out.print(table)


def cmd_report(args: argparse.Namespace, out: Console) -> int:
    from batchml._fs import check_destination
    from batchml.hpo.report import study_report

    check_destination(args.output, "file", "the report")
    with out.status("drawing the study's plots"):
        study_report(_load(args)).write(args.output)
    out.print(f"wrote {safe(args.output.resolve())}")
    return 0


def cmd_best(args: argparse.Namespace, out: Console) -> int:
    study = _load(args)
    best = _best_trial(study)
    if args.json:
        print(json.dumps({"number": best.number, "value": best.value, "params": best.params}))
    else:
        _print_best(study, out)
    return 0


def _best_trial(study: Any) -> Any:
    """The best completed trial; a BatchmlError (exit 1) when none has completed yet."""
    from optuna.trial import TrialState

    from batchml.errors import BatchmlError

    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        ended = len(study.get_trials(deepcopy=False))
        raise BatchmlError(
            f"study {study.study_name!r} has no completed trial yet ({ended} trial(s) in all)",
            hint=f"batchml hpo status {study.study_name} shows their states; a failed trial's "
            "error is in its user attributes and its worker's log",
        )
    return study.best_trial


def _print_best(study: Any, out: Console) -> None:
    best = _best_trial(study)
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items()
    )
    out.print(f"best trial {best.number}: value {best.value:.6g} ({safe(params)})")
