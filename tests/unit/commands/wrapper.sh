#!/bin/sh
# A site's wrapper around a training script: set something up, then run it.
export WRAPPED_BY="$0"
exec python3 "$(dirname "$0")/rank_record.py" "$@"
