"""Lets torchrun start under a torch built without libuv, such as Debian 13's python3-torch.

That build refuses TCPStore's default backend ("use_libuv was requested but
PyTorch was build without libuv support"), and torchrun's rendezvous never asks
for the other one, so its agent dies before any rank starts: a fault of that
build (pytorch/pytorch#148283), not of batchml. The HTCondor pool's jobs run
that torch, so the pool's launch tests put this folder on PYTHONPATH: in a
torchrun process only, TCPStore defaults to the legacy backend. Nothing else
changes; the ranks themselves run untouched.
"""

import sys

if sys.orig_argv[1:3] == ["-m", "torch.distributed.run"]:
    import torch.distributed

    class _LegacyTCPStore(torch.distributed.TCPStore):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.setdefault("use_libuv", False)
            super().__init__(*args, **kwargs)

    torch.distributed.TCPStore = _LegacyTCPStore  # type: ignore[misc]
