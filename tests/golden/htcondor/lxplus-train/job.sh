#!/bin/bash
# Written by batchml: the same body runs under every scheduler.
# Every value that came from a user is single-quoted; site paths keep $VARIABLES.
set -euo pipefail
. "/cvmfs/sft.cern.ch/lcg/views/LCG_106_cuda/x86_64-el9-gcc11-opt"/setup.sh
export PYTHONNOUSERSITE=1
export BATCHML_JOB_NAME='train $(whoami); '"'"'x'"'"''
# The command runs where it was submitted, so relative paths mean what they meant there;
# on a node that does not see that folder it runs here, and says so.
cd '/afs/cern.ch/user/a/alice/my analysis' 2>/dev/null ||
    printf 'batchml: %s (where the job was submitted) is not visible on %s; running in %s, where relative paths in the command may not exist\n' '/afs/cern.ch/user/a/alice/my analysis' "${HOSTNAME:-this node}" "$PWD" >&2
# One process per GPU on this node; rendezvous on a free local port.
export MASTER_ADDR=127.0.0.1
MASTER_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MASTER_PORT
exec python3 -m torch.distributed.run --nnodes=1 --nproc_per_node=2 \
    --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" --no-python -- python train.py --out /eos/user/a/alice/out
