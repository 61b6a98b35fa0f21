#!/usr/bin/env bash
# A Slurm cluster whose jobs run the same Python as the HTCondor pool's jobs, for the
# tests that drive both schedulers from one dask driver (tests/integration/test_hpo_sites.py).
#
#   bash tests/services/pool-slurm.sh start|stop|status      (as root, after htcondor.sh start)
#
# A dask driver and all its workers need the same Python: it pickles the objective by
# value. On a Debian 12 host the pool runs in a Debian 13 chroot (Python 3.13), while
# slurm.sh's cluster runs host jobs (Python 3.11) and speaks Slurm 22.05, which the
# chroot's Slurm 24.11 tools cannot talk to. So on Debian 12 this script runs slurm.sh
# a second time inside the chroot: Debian 13's Slurm and munge, its own ports, its own
# munged (the chroot's /run/munge), its own state folder. Its jobs run in the chroot,
# where a driver started with the pool's Python (batchml-pool-python) submits them.
# On a Debian 13 host the pool runs on the host, with the host's Python and Slurm: the
# cluster of slurm.sh already is that cluster, and this script only points to it.
#
# Writes pool-slurm.env: BATCHML_POOL_SLURM_CONF (SLURM_CONF as the pool sees it),
# BATCHML_POOL_SLURM_PARTITION, BATCHML_POOL_SLURM_GPUS. `htcondor.sh stop` ends every
# process in the chroot, this cluster's too: all.sh starts this after htcondor.sh and
# stops it before.
SERVICE_NAME=pool-slurm
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/services/common.sh
source "$HERE/common.sh"
# shellcheck source=tests/services/pool_root.sh
source "$HERE/pool_root.sh"

# The chroot's services folder: a path no host daemon's command line contains, since
# slurm.sh finds its own daemons by the paths on their command lines.
POOL_SERVICES_DIR=/var/lib/batchml-pool-services
POOL_CTLD_PORT=6827
POOL_SLURMD_PORT=6828

# in_pool_slurm COMMAND: slurm.sh COMMAND inside the chroot, on its own ports and folder.
in_pool_slurm() {
    local scripts="$POOL_SERVICES_DIR/scripts"
    mkdir -p "$ROOT$scripts"
    cp "$HERE/slurm.sh" "$HERE/common.sh" "$ROOT$scripts/"
    in_root env BATCHML_SERVICES_DIR="$POOL_SERVICES_DIR" \
        BATCHML_SLURM_CTLD_PORT="$POOL_CTLD_PORT" BATCHML_SLURM_SLURMD_PORT="$POOL_SLURMD_PORT" \
        bash "$scripts/slurm.sh" "$1"
}

# publish FILE: pool-slurm.env from the slurm.env FILE of the cluster the pool uses.
publish() {
    local conf partition gpus
    conf=$(sed -n 's/^SLURM_CONF=//p' "$1")
    partition=$(sed -n 's/^BATCHML_SLURM_PARTITION=//p' "$1")
    gpus=$(sed -n 's/^BATCHML_SLURM_GPUS=//p' "$1")
    [ -n "$conf" ] && [ -n "$partition" ] || die "no SLURM_CONF or partition in $1"
    write_env pool-slurm \
        "BATCHML_POOL_SLURM_CONF=$conf" \
        "BATCHML_POOL_SLURM_PARTITION=$partition" \
        "BATCHML_POOL_SLURM_GPUS=$gpus"
}

cmd_start() {
    if [ -z "$ROOT" ]; then
        [ -f "$BATCHML_SERVICES_DIR/slurm.env" ] || die "start slurm.sh first: the pool uses its cluster"
        publish "$BATCHML_SERVICES_DIR/slurm.env"
        log "the pool runs on the host: it uses slurm.sh's cluster"
        return 0
    fi
    [ -f "$BATCHML_SERVICES_DIR/htcondor.env" ] && mountpoint -q "$ROOT/proc" ||
        die "start htcondor.sh first: this cluster runs in its chroot ($ROOT)"
    remove_env pool-slurm
    in_pool_slurm start || die "the Slurm cluster in $ROOT did not start"
    publish "$ROOT$POOL_SERVICES_DIR/slurm.env"
    log "ready: SLURM_CONF=$(sed -n 's/^BATCHML_POOL_SLURM_CONF=//p' "$BATCHML_SERVICES_DIR/pool-slurm.env") in $ROOT"
}

cmd_stop() {
    remove_env pool-slurm
    # Nothing of ours runs outside a chroot; without its mounts, htcondor.sh stop already
    # ended every process in it.
    if [ -n "$ROOT" ] && mountpoint -q "$ROOT/proc"; then
        in_pool_slurm stop || true
    fi
    log "stopped"
}

cmd_status() {
    if [ -z "$ROOT" ]; then
        bash "$HERE/slurm.sh" status
    elif mountpoint -q "$ROOT/proc"; then
        in_pool_slurm status
    else
        log "not running: the chroot $ROOT is not mounted"
        return 1
    fi
}

[ "$(id -u)" -eq 0 ] || die "run me as root (I install packages and start daemons)"
case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
