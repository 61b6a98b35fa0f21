"""A stand-in for ``nvidia-cuda-mps-control`` on machines without a GPU (here, CI).

It records each call: its arguments, the MPS folders it was given and their
modes, and (for a call other than ``-d``) what came on standard input, so a
test can check that a worker job started its daemon privately and quit it.
There is no MPS without a GPU, so nothing real can run in its place here.
"""

from __future__ import annotations

from pathlib import Path

SCRIPT = """#!/bin/sh
{
  echo "args=$*"
  echo "pipe=$CUDA_MPS_PIPE_DIRECTORY $(stat -c %a "$CUDA_MPS_PIPE_DIRECTORY")"
  echo "log=$CUDA_MPS_LOG_DIRECTORY $(stat -c %a "$CUDA_MPS_LOG_DIRECTORY")"
  echo "folder=$(stat -c %a "$(dirname "$CUDA_MPS_PIPE_DIRECTORY")")"
  [ "$1" = -d ] || echo "stdin=$(cat)"
} >>"$MPS_RECORD"
"""


def install(folder: Path) -> Path:
    """Write the stand-in into ``folder``/bin; the folder to put first on PATH."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    control = bin_dir / "nvidia-cuda-mps-control"
    control.write_text(SCRIPT)
    control.chmod(0o755)
    return bin_dir


def calls(record: Path) -> list[dict[str, str]]:
    """The calls the stand-in recorded in ``record`` (its MPS_RECORD), in order."""
    found: list[dict[str, str]] = []
    for line in record.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "args":
            found.append({})
        found[-1][key] = value
    return found
