#!/bin/bash
# Written by batchml: the same body runs under every scheduler.
# Every value that came from a user is single-quoted; site paths keep $VARIABLES.
set -euo pipefail
eval "$(conda shell.posix hook)"
conda activate 'hep ml'
export OMP_NUM_THREADS=4
export BATCHML_JOB_NAME='array run'
# Array job: this task's item is line (index + 1) of items.txt.
BATCHML_ARRAY_INDEX=${SLURM_ARRAY_TASK_ID}
BATCHML_ARRAY_ITEM=$(sed -n "$((BATCHML_ARRAY_INDEX + 1))p" items.txt)
export BATCHML_ARRAY_INDEX BATCHML_ARRAY_ITEM
exec python3 train.py --config 'it'"'"'s.yaml'
