#!/bin/bash
# Written by batchml: the same body runs under every scheduler.
# Every value that came from a user is single-quoted; site paths keep $VARIABLES.
set -euo pipefail
module load cuda
. "${HOME}/venvs/batchml"/bin/activate
export BATCHML_JOB_NAME='single run'
exec python3 train.py --config 'it'"'"'s.yaml'
