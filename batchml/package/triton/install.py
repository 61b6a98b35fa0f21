"""Finding a ``tritonserver`` and checking that it can serve a package's repository.

The server is found on PATH (a Triton container, a site installation) or in
the nvidia-pytriton wheel, which bundles a real Triton server whose only
backend is python and a python-backend stub per Python version, kept outside
its backend folder (batchml/package/triton/server.py links the one for the
running Python into a private backend folder). Whether the server has the
backend each model names is checked before it starts, so a mismatch is one
line that says how to rebuild, not a failed start.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from batchml.errors import BatchmlError, InvalidValue

PYTRITON_INSTALL = "pip install --no-deps 'nvidia-pytriton>=0.7,<0.8'"
_ENGINE = re.compile(r'^\s*(platform|backend)\s*:\s*"([^"]+)"', re.MULTILINE)
_PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt"}


class ServeError(BatchmlError):
    """The server could not be started or stopped serving; the message says why."""


@dataclass(frozen=True)
class Installation:
    """A ``tritonserver`` binary, where its backends are and what it needs to run.

    ``backends`` is None when the server's backend folder cannot be seen (the
    server then reports a missing backend itself); ``stub`` is the python
    backend's stub for this Python, for nvidia-pytriton's server, which ships
    one per Python version outside its backend folder.
    """

    binary: Path
    source: str
    backends: frozenset[str] | None
    python_backend: Path | None = None
    stub: Path | None = None
    libraries: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Model:
    """One model of the repository: its name and the backend its config.pbtxt names."""

    name: str
    backend: str


def repository_of(package_dir: Path) -> tuple[Path, list[Model]]:
    """The package's Triton repository and its models; InvalidValue when there is none."""
    repository = package_dir / "triton"
    configs = sorted(repository.glob("*/config.pbtxt")) if repository.is_dir() else []
    if not configs:
        raise InvalidValue(
            f"{package_dir} holds no Triton repository (no triton/*/config.pbtxt)",
            hint="pass a folder written by 'batchml package build MODEL -o DIR'",
        )
    models = []
    for config in configs:
        found = {m.group(1): m.group(2) for m in _ENGINE.finditer(config.read_text())}
        if "backend" in found:
            backend = found["backend"]
        else:
            platform = found.get("platform", "")
            backend = _PLATFORM_BACKENDS.get(platform, platform)
        models.append(Model(config.parent.name, backend))
    return repository, models


def find_server(explicit: Path | None = None) -> Installation:
    """The server to run: ``explicit``, else ``tritonserver`` on PATH, else nvidia-pytriton's."""
    if explicit is not None:
        if not (explicit.is_file() and os.access(explicit, os.X_OK)):
            raise InvalidValue(
                f"--tritonserver {explicit} is not an executable file",
                hint="give the path of a tritonserver binary, or leave the option out",
            )
        return _installed(explicit, "--tritonserver")
    on_path = shutil.which("tritonserver")
    if on_path is not None:
        return _installed(Path(on_path), "PATH")
    bundled = _pytriton()
    if bundled is not None:
        return bundled
    raise ServeError(
        "no tritonserver found: none on PATH and nvidia-pytriton is not installed",
        hint=f"install the server bundled in nvidia-pytriton with: {PYTRITON_INSTALL}",
    )


def _installed(binary: Path, source: str) -> Installation:
    """A server laid out as Triton's containers lay it: ``<prefix>/bin``, ``<prefix>/backends``."""
    folder = binary.resolve().parent.parent / "backends"
    backends = (
        frozenset(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else None
    )
    return Installation(binary, source, backends)


def _pytriton() -> Installation | None:
    """nvidia-pytriton's server, found without importing pytriton (its imports are heavy)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    binary = root / "bin" / "tritonserver"
    if not binary.is_file():
        return None
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServeError(
            f"nvidia-pytriton at {root.parent} has no python backend stub for Python {version}",
            hint="run batchml with a Python that nvidia-pytriton supports (3.8 to 3.13)",
        )
    libraries = [root.parent.parent / "nvidia_pytriton.libs"]
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and sysconfig.get_config_var("LDLIBRARY"):
        libraries.insert(0, Path(libdir))  # the stub links the libpython of this Python's version
    return Installation(
        binary,
        "nvidia-pytriton",
        frozenset({"python"}),
        python_backend=root / "backends" / "python",
        stub=stub,
        libraries=tuple(libraries),
    )


def check_backends(models: list[Model], installation: Installation) -> None:
    if installation.backends is None:
        return
    for model in models:
        if model.backend in installation.backends:
            continue
        hint = (
            "rebuild the package with 'batchml package build MODEL -o DIR --triton-backend python'"
            if "python" in installation.backends
            else f"use a tritonserver that has the {model.backend} backend (--tritonserver PATH)"
        )
        raise InvalidValue(
            f"model {model.name!r} needs Triton's {model.backend} backend, but the tritonserver "
            f"from {installation.source} ({installation.binary}) has only "
            f"{', '.join(sorted(installation.backends)) or 'none'}",
            hint=hint,
        )
    if any(m.backend == "python" for m in models) and installation.stub is not None:
        for module in ("numpy", "onnxruntime"):
            if importlib.util.find_spec(module) is None:
                raise ServeError(
                    f"the python backend runs model.py with {sys.executable}, which lacks {module}",
                    hint=f"{sys.executable} -m pip install {module}",
                )
