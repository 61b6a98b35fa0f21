"""Slurm: plain jobs through its command line (backend.py), dask workers as jobs (cluster.py),
and its JSON read into job states (status.py)."""

from batchml.backends.slurm.backend import SlurmBackend

__all__ = ["SlurmBackend"]
