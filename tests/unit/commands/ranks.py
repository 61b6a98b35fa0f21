"""Run under torchrun: every rank checks what it sees; rank 0 reports world size and devices."""

import os

from batchml.trial_report import report

world = int(os.environ["WORLD_SIZE"])
devices = os.environ["CUDA_VISIBLE_DEVICES"].split(",")
assert int(os.environ["LOCAL_RANK"]) < world
report(world * 10 + len(devices))  # only rank 0 writes
