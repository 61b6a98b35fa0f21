#!/bin/bash
# Written by batchml: the same body runs under every scheduler.
# Every value that came from a user is single-quoted; site paths keep $VARIABLES.
set -euo pipefail
. "${HOME}/venvs/ml"/bin/activate
export BATCHML_JOB_NAME='train $(whoami); '"'"'x'"'"''
# The command runs where it was submitted, so relative paths mean what they meant there.
cd '/afs/cern.ch/user/a/alice/my analysis' || {
    printf 'batchml: cannot enter %s (where the job was submitted) on %s: submit from a folder the batch nodes share\n' '/afs/cern.ch/user/a/alice/my analysis' "${HOSTNAME:-this node}" >&2
    exit 2
}
exec python train.py --out /eos/user/a/alice/out
