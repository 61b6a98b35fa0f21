"""HTCondor: plain jobs through the htcondor2 bindings (backend.py), dask workers as jobs
(cluster.py), every submit description checked before it is sent (lint.py)."""

from batchml.backends.htcondor.backend import HTCondorBackend

__all__ = ["HTCondorBackend"]
