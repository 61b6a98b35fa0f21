"""Schedulers behind one interface: `backend_for(site)` picks the module for the site's scheduler.

A new scheduler is one module here with a Backend subclass, and one site config.
"""

from __future__ import annotations

from importlib import import_module

from batchml.backends.base import Backend, JobInfo, JobSpec, JobState, SchedulerError
from batchml.sites import Site

_MODULES = {"htcondor": "HTCondorBackend", "slurm": "SlurmBackend", "local": "LocalBackend"}


def backend_for(site: Site) -> Backend:
    """The backend for ``site``; its module (and scheduler bindings) load only now."""
    module = import_module(f"batchml.backends.{site.scheduler}")
    backend_class: type[Backend] = getattr(module, _MODULES[site.scheduler])
    return backend_class(site)


__all__ = ["Backend", "JobInfo", "JobSpec", "JobState", "SchedulerError", "backend_for"]
