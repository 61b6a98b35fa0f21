"""This machine, no batch system: plain jobs as detached processes (backend.py), dask
workers as `dask worker` processes, one per GPU slot (cluster.py)."""

from batchml.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
