#!/usr/bin/env bash
# Start or stop every real test service: all.sh start|stop|status
# `start` stops at the first service that fails to come up (its log tail is
# printed by its own script); `stop` always tries all of them, in reverse order.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
services=(slurm xrootd htcondor pool-slurm)
case "${1:-}" in
    start)
        for s in "${services[@]}"; do bash "$here/$s.sh" start || exit 1; done ;;
    stop)
        status=0
        # In reverse: pool-slurm's daemons run in htcondor's chroot.
        for ((i = ${#services[@]} - 1; i >= 0; i--)); do
            bash "$here/${services[i]}.sh" stop || status=1
        done
        exit "$status" ;;
    status)
        status=0
        for s in "${services[@]}"; do bash "$here/$s.sh" status || status=1; done
        exit "$status" ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
