"""Turning what the user hands to ``publish`` into files under a staging folder.

A model may be a torch ``nn.Module`` (its state dict is stored, and an
exported program with a symbolic batch dimension when ``torch.export`` works
with the input example), raw bytes, or a file or folder already on disk. torch
is imported only when the model is a module, which it can only be once the
caller has imported torch. ``torch.jit`` is deprecated in the torch this
package targets, so the portable form stored is ``torch.export``'s program.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Union

from batchml._fs import write_new
from batchml.errors import InvalidValue
from batchml.registry.on_disk import make_dirs
from batchml.registry.signature import npz_bytes

FileSource = Union[bytes, str, "os.PathLike[str]"]
MODEL_DIR = "model"
EXTRA_DIR = "extra"
STATE_DICT = f"{MODEL_DIR}/state_dict.pt"
EXPORTED = f"{MODEL_DIR}/exported.pt2"
INPUT_EXAMPLE = "input_example.npz"


def is_torch_module(model: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def stage_model(model: object, files_dir: Path, example: Mapping[str, Any]) -> dict[str, Any]:
    """Write the model's artifacts under ``files_dir``; returns what was stored, for the record.

    ``example`` is the input example as {input name: numpy array}, in call order.
    """
    if is_torch_module(model):
        return _stage_module(model, files_dir, example)
    if isinstance(model, (bytes, str, os.PathLike)):
        rel = _stage_source(model, files_dir / MODEL_DIR)
        return {"kind": "files", "path": f"{MODEL_DIR}/{rel}" if rel else MODEL_DIR}
    raise InvalidValue(
        f"cannot publish a model of type {type(model).__name__}",
        hint="pass a torch nn.Module, bytes, or the path of a file or folder",
    )


def _stage_module(model: Any, files_dir: Path, example: Mapping[str, Any]) -> dict[str, Any]:
    import io

    import torch

    example_args = tuple(torch.from_numpy(array) for array in example.values())
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    _write(files_dir / STATE_DICT, buffer.getvalue())
    record: dict[str, Any] = {
        "kind": "torch",
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "state_dict": STATE_DICT,
    }
    if not example_args:
        record["exported_error"] = "no input example given"
        return record
    try:
        batch = torch.export.Dim("batch")
        dynamic = tuple({0: batch} for _ in example_args)
        program = torch.export.export(model, example_args, dynamic_shapes=dynamic)
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
    except Exception as exc:  # export fails on many legal models; the state dict still stands
        record["exported_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        return record
    _write(files_dir / EXPORTED, buffer.getvalue())
    record["exported"] = EXPORTED
    return record


def stage_example(arrays: Mapping[str, Any], files_dir: Path) -> None:
    """Store the input example beside the model, readable with numpy alone."""
    _write(files_dir / INPUT_EXAMPLE, npz_bytes(arrays))


def stage_extra(files: Mapping[str, FileSource], files_dir: Path) -> list[str]:
    """Copy the user's extra files under ``extra/``; names must stay inside that folder."""
    stored = []
    for name, source in files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or "\\" in name:
            raise InvalidValue(
                f"extra file name {name!r} would leave the version folder",
                hint="use a relative name such as 'config.yaml' or 'docs/card.md'",
            )
        target = files_dir / EXTRA_DIR / rel
        _stage_source(source, target.parent, target.name)
        stored.append(f"{EXTRA_DIR}/{rel}")
    return stored


def _stage_source(source: FileSource, folder: Path, name: str | None = None) -> str:
    """Copy bytes, a file or a folder into ``folder`` as ``name`` (default: the source's name).

    Returns the stored name, '' when a folder's content went straight into ``folder``.
    """
    if isinstance(source, bytes):
        name = name or "model.bin"
        _write(folder / name, source)
        return name
    path = Path(source)
    if path.is_dir():
        make_dirs(folder)
        shutil.copytree(path, folder / name if name else folder, dirs_exist_ok=True)
        return name or ""
    if not path.is_file():
        raise InvalidValue(
            f"{path} is neither a file nor a folder", hint="check the path given to publish"
        )
    name = name or path.name
    make_dirs(folder)
    shutil.copyfile(path, folder / name)
    return name


def _write(path: Path, data: bytes) -> None:
    make_dirs(path.parent)
    write_new(path, data)
