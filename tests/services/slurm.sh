#!/usr/bin/env bash
# A real one-node Slurm cluster (munged + slurmctld + slurmd) for the integration tests.
#
#   bash tests/services/slurm.sh start|stop|status      (as root, no systemd needed)
#
# One node named `hostname -s` on 127.0.0.1 that claims 8 CPUs and 4 GPUs: the GPUs are
# gres entries whose File= are symlinks to /dev/null, so Slurm sets CUDA_VISIBLE_DEVICES
# and SLURM_JOB_GPUS exactly as on a GPU site. Each GPU is also offered as shards (a share
# of it, Slurm >= 22.05), as a site that lets light jobs share GPUs does: a job asks either
# `--gres=gpu:N` or `--gres=shard:N`, and a GPU lent whole lends no shard at the same time. Every file (config, munge key, spool, state,
# pid and log files) lives under "$BATCHML_SERVICES_DIR/slurm/"; the only thing outside it
# is munged's default socket in /run/munge (a custom socket breaks sacctmgr/slurmdbd).
#
# Written against Debian 12 (Slurm 22.05.8, munge 0.5.15), where it is tested. Debian 13
# ships Slurm 24.11 and munge 0.5.16; the settings below are the ones both accept (see the
# "24.11" comments). Facts behind the choices: /work/shared/notes/slurm-local-cluster.md.
set -euo pipefail

SERVICE_NAME=slurm
# shellcheck source=tests/services/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[ "$(id -u)" -eq 0 ] || die "run me as root (I install packages and start daemons)"

ROOT="$BATCHML_SERVICES_DIR/slurm"
CONF="$ROOT/etc/slurm.conf"
GRES_CONF="$ROOT/etc/gres.conf"     # slurmd reads gres.conf from slurm.conf's folder
SHARED="$ROOT/shared"
MUNGE_DIR="$ROOT/munge"
MUNGE_PID="$MUNGE_DIR/munged.pid"
CTLD_PID="$ROOT/run/slurmctld.pid"
SLURMD_PID="$ROOT/run/slurmd.pid"
NODE="$(hostname -s)"
PARTITION="batch"
CPUS=8
GPUS=4
SHARDS_PER_GPU=4   # shards of each GPU: jobs asking shard:4 fill one
READY_LIMIT=60      # seconds for a fresh cluster to run its first srun
# Slurm's own ports unless told otherwise: pool-slurm.sh runs this script a second time,
# in the HTCondor pool's chroot, for a second cluster beside this one.
CTLD_PORT=${BATCHML_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${BATCHML_SLURM_SLURMD_PORT:-6818}
export SLURM_CONF="$CONF"

# --- probes (each bounded: a client of a dead slurmctld retries for ~10 s) ---------------

munge_works() { timeout 5 munge -n </dev/null 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; }

# `sinfo` can say "idle" before slurmd registered; only a job that really ran proves the
# cluster usable. --immediate makes srun give up instead of queueing while the node is
# still unknown, so a retried probe never leaves a pending job behind.
srun_works() {
    pid_alive "$CTLD_PID" slurmctld && pid_alive "$SLURMD_PID" slurmd || return 1
    timeout 20 srun --immediate=10 -t 1 -N 1 -n 1 -p "$PARTITION" true >/dev/null 2>&1
}

ctld_answers() { [ -f "$CONF" ] && timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }

# pid_alive PIDFILE NAME: the daemon NAME named in PIDFILE runs (not a zombie, not some
# other program that got a recycled pid).
pid_alive() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    is_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# Daemons of an earlier run whose pid file went missing still hold ports 6817/6818 or the
# munge socket lock; find them by the private path on their command line, never by name.
pids_with_arg() {
    local exe=$1 needle=$2 pid
    for pid in $(pgrep -x "$exe" 2>/dev/null || true); do
        is_alive "$pid" || continue
        tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$needle" && echo "$pid"
    done
    return 0
}

# slurmstepd is exec'd by our slurmd and inherits its environment, which carries our
# SLURM_CONF: that tells our step daemons from those of any other Slurm on the machine.
our_stepds() {
    local pid
    for pid in $(pgrep -x slurmstepd 2>/dev/null || true); do
        is_alive "$pid" || continue
        tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qxF -- "SLURM_CONF=$CONF" && echo "$pid"
    done
    return 0
}

# kill_pids PID...: TERM, wait up to 10 s, then KILL whatever is still alive.
kill_pids() {
    [ "$#" -eq 0 ] && return 0
    kill -TERM "$@" 2>/dev/null || true
    for _ in $(seq 20); do
        any_alive "$@" || return 0
        sleep 0.5
    done
    kill -KILL "$@" 2>/dev/null || true
}

# stop_daemon PIDFILE NAME: stop_pidfile, unless the pid now belongs to another program
# (the machine is reused: after a reboot a stale pid file may name anything).
stop_daemon() {
    local file=$1 name=$2 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
        rm -f "$file"
        return 0
    fi
    stop_pidfile "$file"
}

# kill_found FINDER ARG...: kill_pids on the pids FINDER prints, one a line.
kill_found() {
    local pids
    mapfile -t pids < <("$@")
    kill_pids "${pids[@]}"
}

any_alive() {
    local pid
    for pid in "$@"; do is_alive "$pid" && return 0; done
    return 1
}

# --- configuration -----------------------------------------------------------------------

write_config() {
    local conf_dir; conf_dir="$(dirname "$CONF")"
    mkdir -p "$conf_dir" "$ROOT/run" "$ROOT/log" "$ROOT/state" "$ROOT/spool" "$ROOT/dev"
    chmod 755 "$ROOT" "$conf_dir"
    # The fake GPUs: symlinks to a character device. File-less GPUs are dropped and regular
    # files rejected, and either leaves the node INVAL/DRAIN.
    local i files=""
    for i in $(seq 0 $((GPUS - 1))); do
        ln -sfn /dev/null "$ROOT/dev/nvidia$i"
    done
    files="$ROOT/dev/nvidia[0-$((GPUS - 1))]"
    {
        echo "# Generated by tests/services/slurm.sh: $GPUS fake GPUs (symlinks to /dev/null),"
        echo "# each also offered as $SHARDS_PER_GPU shards (one line per device file)."
        echo "AutoDetect=off"
        echo "NodeName=$NODE Name=gpu File=$files"
        for i in $(seq 0 $((GPUS - 1))); do
            echo "NodeName=$NODE Name=shard Count=$SHARDS_PER_GPU File=$ROOT/dev/nvidia$i"
        done
    } >"$GRES_CONF.tmp"
    # 24.05 and later start a cgroup plugin in slurmd whatever ProctrackType and TaskPlugin
    # say, and fail where /sys/fs/cgroup is not mounted (the pool's chroot, pool-slurm.sh);
    # 22.05 needs no cgroup.conf and does not know `disabled`.
    if [ "$(slurmd -V | awk '{ split($2, v, "."); print v[1] }')" -ge 24 ]; then
        echo "CgroupPlugin=disabled" >"$conf_dir/cgroup.conf"
    fi
    # 24.11: every key below is still valid there (select/cons_res was removed in 24.05;
    # this uses cons_tres). CryptoType is left out on purpose: its default is munge on
    # 22.05, and 23.11 removed the key, so naming it would break one of the two.
    cat >"$CONF.tmp" <<EOF
# Generated by tests/services/slurm.sh; rewritten on every start.
ClusterName=batchml
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
GresTypes=gpu,shard
ReturnToService=2
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=8000 Gres=gpu:$GPUS,shard:$((GPUS * SHARDS_PER_GPU)) State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

# True when the config on disk differs from what this script writes now (script edited,
# hostname changed): a running cluster with a stale config must be restarted, not reused.
config_changed() {
    write_config
    local changed=1
    if cmp -s "$CONF.tmp" "$CONF" && cmp -s "$GRES_CONF.tmp" "$GRES_CONF"; then changed=0; fi
    rm -f "$CONF.tmp" "$GRES_CONF.tmp"
    [ "$changed" -eq 1 ]
}

publish_env() {
    write_env slurm \
        "SLURM_CONF=$CONF" \
        "BATCHML_SLURM_PARTITION=$PARTITION" \
        "BATCHML_SLURM_NODE=$NODE" \
        "BATCHML_SLURM_GPUS=$GPUS" \
        "BATCHML_SLURM_SHARDS_PER_GPU=$SHARDS_PER_GPU" \
        "BATCHML_SLURM_CPUS=$CPUS" \
        "BATCHML_SLURM_SHARED=$SHARED"
}

make_shared() {
    mkdir -p "$SHARED"
    chmod 1777 "$SHARED"
}

# --- daemons -----------------------------------------------------------------------------

start_munged() {
    if munge_works && ! pid_alive "$MUNGE_PID" munged; then
        # Someone else's munged owns the default socket; every daemon and client here talks
        # to that same socket, so its key is as good as ours. Reuse it, never stop it.
        log "munged already running (not ours): reusing it"
        return 0
    fi
    stop_daemon "$MUNGE_PID" munged
    kill_found pids_with_arg munged "$MUNGE_DIR/"
    mkdir -p "$MUNGE_DIR" /run/munge
    chmod 700 "$MUNGE_DIR"
    chmod 755 /run/munge
    rm -f "$MUNGE_DIR/munge.key"
    dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
    chmod 400 "$MUNGE_DIR/munge.key"
    # --force: run as root, and take over a stale socket left by a killed munged.
    # 24.11 / munge 0.5.16 (Debian 13): same options.
    munged --force \
        --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$MUNGE_PID" \
        --log-file="$MUNGE_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" \
        || die "munged failed to start; see $MUNGE_DIR/munged.log"
    wait_for 10 "munged" munge_works || die "munged does not answer; see $MUNGE_DIR/munged.log"
}

start_slurm_daemons() {
    # A fresh state folder: an old one may hold a DRAIN/INVAL node, dead jobs or another
    # ClusterName, any of which keeps the cluster from running jobs.
    rm -rf "${ROOT:?}/state" "${ROOT:?}/spool"
    mkdir -p "$ROOT/state" "$ROOT/spool"
    : >"$ROOT/log/slurmctld.log"
    : >"$ROOT/log/slurmd.log"
    # Both daemonize and write their pid files themselves. 24.11 still forks by default
    # (-D keeps it in the foreground); -i tolerates unreadable state files.
    slurmctld -i -f "$CONF" || die "slurmctld failed; see $ROOT/log/slurmctld.log"
    wait_for 20 "slurmctld" ctld_answers || die "slurmctld does not answer; see $ROOT/log/slurmctld.log"
    # -N: the node name does not depend on how the host resolves its own name.
    slurmd -f "$CONF" -N "$NODE" || die "slurmd failed; see $ROOT/log/slurmd.log"
}

stop_all() {
    if pid_alive "$CTLD_PID" slurmctld && ctld_answers; then
        local jobs
        jobs=$(timeout 10 squeue -h -o %A 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            log "cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
            # shellcheck disable=SC2086  # one argument per job id
            timeout 10 scancel $jobs 2>/dev/null || true
            # scancel also removes held and --begin jobs, so the queue does empty.
            wait_for 20 "jobs to leave" queue_empty || log "jobs still listed; killing their step daemons"
        fi
    fi
    stop_daemon "$SLURMD_PID" slurmd
    kill_found pids_with_arg slurmd "$CONF"
    stop_daemon "$CTLD_PID" slurmctld
    kill_found pids_with_arg slurmctld "$CONF"
    # Stopping slurmd leaves step daemons (and their jobs) alive.
    kill_found our_stepds
    stop_daemon "$MUNGE_PID" munged
    kill_found pids_with_arg munged "$MUNGE_DIR/"
}

queue_empty() { [ -z "$(timeout 10 squeue -h -o %A 2>/dev/null)" ]; }

# --- commands ----------------------------------------------------------------------------

cmd_start() {
    local t0; t0=$(date +%s.%N)
    apt_install slurmctld slurmd slurm-client munge procps
    make_shared
    if ! config_changed && srun_works; then
        log "already running; srun works"
        publish_env
        return 0
    fi
    remove_env slurm
    log "starting (state in $ROOT)"
    stop_all
    write_config
    mv -f "$CONF.tmp" "$CONF"
    mv -f "$GRES_CONF.tmp" "$GRES_CONF"
    start_munged
    start_slurm_daemons
    if ! wait_for "$READY_LIMIT" "a job to run (srun true)" srun_works; then
        tail -n 20 "$ROOT/log/slurmctld.log" "$ROOT/log/slurmd.log" >&2 || true
        die "the cluster did not run a job within ${READY_LIMIT}s"
    fi
    publish_env
    log "ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s (SLURM_CONF=$CONF)"
}

cmd_stop() {
    remove_env slurm
    stop_all
    log "stopped"
}

cmd_status() {
    if srun_works; then
        log "running: srun works (SLURM_CONF=$CONF)"
        return 0
    fi
    log "not running (srun true fails)"
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
