"""A training script as users have them: arguments in, values out through trial_report."""

import argparse
import os
import time

from batchml.trial_report import report

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--label", default="")
parser.add_argument("--fail", action="store_true")
args = parser.parse_args()
if args.fail:
    raise SystemExit("diverged: loss is nan")
for step in range(4):
    report(args.x**2 + 1 / (step + 1), step=step)
    time.sleep(0.1)
with open("seen.txt", "w") as out:  # in the trial's scratch folder, for the tests
    out.write(f"{args.label}\n{os.environ.get('CUDA_VISIBLE_DEVICES')}\n")
report(args.x**2)
