"""A package's Triton side: its model repository, and a real ``tritonserver`` to serve it.

- repository.py: ``triton/<name>/config.pbtxt`` and the model files (written by build);
- model.py: the python backend's model, copied into the repository, never imported;
- install.py: finding a ``tritonserver`` and checking it has the backends a package names;
- server.py: ``serve``, on loopback by default (``batchml package serve``).

The repository's names are here too, as ``batchml.package.triton.TritonOptions`` has always been.
"""

from batchml.package.triton.repository import (
    BACKENDS,
    Backend,
    Tensor,
    TritonOptions,
    python_model,
    write_repository,
)

__all__ = ["BACKENDS", "Backend", "Tensor", "TritonOptions", "python_model", "write_repository"]
