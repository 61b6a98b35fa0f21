"""One rank of a multi-GPU job: what it sees, written to $RANKS_OUT/rank-<RANK>.json.

Its GPU is the one a training script picks: entry LOCAL_RANK of CUDA_VISIBLE_DEVICES.
Runs as a script, as ``-m rank_record`` and behind wrapper.sh; only the standard library.
"""

import json
import os
import sys

local_rank = int(os.environ["LOCAL_RANK"])
visible = [gpu for gpu in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if gpu]
record = {
    "rank": int(os.environ["RANK"]),
    "local_rank": local_rank,
    "world_size": int(os.environ["WORLD_SIZE"]),
    "gpu": visible[local_rank] if local_rank < len(visible) else None,
    "visible": visible,
    "argv": sys.argv[1:],
    "python": sys.executable,
    "cwd": os.getcwd(),
    "wrapped": os.environ.get("WRAPPED_BY"),
}
path = os.path.join(os.environ["RANKS_OUT"], f"rank-{record['rank']}.json")
with open(path + ".part", "w") as out:
    json.dump(record, out)
os.replace(path + ".part", path)
