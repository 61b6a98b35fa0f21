#!/bin/bash
# Written by batchml: the same body runs under every scheduler.
# Every value that came from a user is single-quoted; site paths keep $VARIABLES.
set -euo pipefail
module load cuda
. "${HOME}/venvs/batchml"/bin/activate
export BATCHML_JOB_NAME='torchrun run'
# One process per GPU on this node; rendezvous on a free local port.
export MASTER_ADDR=127.0.0.1
MASTER_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MASTER_PORT
exec python3 -m torch.distributed.run --nnodes=1 --nproc_per_node=4 \
    --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" -- train.py --config 'it'"'"'s.yaml'
