#!/bin/bash
# Written by batchml: the same body runs under every scheduler.
# Every value that came from a user is single-quoted; site paths keep $VARIABLES.
set -euo pipefail
. "${HOME}/venvs/ml"/bin/activate
export BATCHML_JOB_NAME='train $(whoami); '"'"'x'"'"''
exec python train.py --out /eos/user/a/alice/out
