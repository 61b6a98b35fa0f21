#!/bin/bash
# Written by batchml: the same body runs under every scheduler.
# Every value that came from a user is single-quoted; site paths keep $VARIABLES.
set -euo pipefail
. "${HOME}/venvs/ml"/bin/activate
export BATCHML_JOB_NAME='train $(whoami); '"'"'x'"'"''
# The command runs where it was submitted, so relative paths mean what they meant there;
# on a node that does not see that folder it runs here, and says so.
cd '/afs/cern.ch/user/a/alice/my analysis' 2>/dev/null ||
    printf 'batchml: %s (where the job was submitted) is not visible on %s; running in %s, where relative paths in the command may not exist\n' '/afs/cern.ch/user/a/alice/my analysis' "${HOSTNAME:-this node}" "$PWD" >&2
exec python train.py --out /eos/user/a/alice/out
