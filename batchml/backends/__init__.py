"""Schedulers behind one interface: `backend_for(site)` picks the package for the site's scheduler.

A new scheduler is one folder here (a Backend subclass, its dask cluster) and one
site config. What every scheduler shares is in base.py (the interface, the typed
ClusterOptions) and _worker.py (paths, ports, GPU slots, worker jobs).
"""

from __future__ import annotations

from importlib import import_module

from batchml.backends.base import (
    Backend,
    ClusterOptions,
    JobInfo,
    JobSpec,
    JobState,
    SchedulerError,
    UnknownJob,
)
from batchml.config.site_schema import Site

_CLASSES = {"htcondor": "HTCondorBackend", "slurm": "SlurmBackend", "local": "LocalBackend"}


def backend_for(site: Site) -> Backend:
    """The backend for ``site``; its package (and scheduler bindings) load only now."""
    package = import_module(f"batchml.backends.{site.scheduler}")
    backend_class: type[Backend] = getattr(package, _CLASSES[site.scheduler])
    return backend_class(site)


__all__ = [
    "Backend",
    "ClusterOptions",
    "JobInfo",
    "JobSpec",
    "JobState",
    "SchedulerError",
    "UnknownJob",
    "backend_for",
]
