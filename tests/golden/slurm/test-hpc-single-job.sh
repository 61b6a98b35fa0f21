#!/bin/bash
# Written by batchml: the same body runs under every scheduler.
# Every value that came from a user is single-quoted; site paths keep $VARIABLES.
set -euo pipefail
eval "$(conda shell.posix hook)"
conda activate 'hep ml'
export OMP_NUM_THREADS=4
export BATCHML_JOB_NAME='single run'
exec python3 train.py --config 'it'"'"'s.yaml'
