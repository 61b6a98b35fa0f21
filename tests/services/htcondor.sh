#!/usr/bin/env bash
# A real personal HTCondor pool (master, collector, negotiator, schedd, startd)
# with 8 CPUs and 4 simulated GPUs, for the integration tests.
#
#   bash tests/services/htcondor.sh start|stop|status      (as root, no systemd)
#
# Debian 12 ships no HTCondor daemons, so on Debian 12 the pool runs in a
# Debian 13 (trixie) chroot kept at $CHROOT_DIR between runs (built once, about
# a minute). On a Debian 13 host (or any host whose apt offers `htcondor`) the
# same configuration is applied to the host itself: ROOT is empty and `in_root`
# runs commands directly. See /work/shared/notes/htcondor-personal-pool.md.
#
# Jobs never run as root: they are submitted as $SUBMIT_USER, who exists with the
# same uid on the host and in the chroot, and they read and write files in
# $SHARED_DIR, which has the same path on both sides (a bind mount).
# The host reaches the pool through a client config ($CLIENT_CONFIG, IDTOKENS
# as $SUBMIT_USER) for the htcondor2 bindings, and through wrappers in $BIN_DIR
# that run the real condor_* tools inside the pool as $SUBMIT_USER.
SERVICE_NAME=htcondor
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/services/common.sh
source "$HERE/common.sh"
# shellcheck source=tests/services/pool_root.sh
source "$HERE/pool_root.sh"    # CHROOT_DIR, ROOT, in_root

SHARED_DIR=/srv/batchml-htcondor
SUBMIT_USER=batchml
FIRST_SUBMIT_UID=2001
STATE_DIR="$BATCHML_SERVICES_DIR/htcondor"
BIN_DIR="$STATE_DIR/bin"
TOKEN_DIR="$STATE_DIR/tokens.d"
CLIENT_CONFIG="$STATE_DIR/condor_config"
POOL_CONFIG_NAME=99-batchml-tests.conf
MASTER_PID_FILE=/run/condor/master.pid
GPUS=4
SUITE=trixie
ROOT_PACKAGES=(htcondor python3 python3-venv ca-certificates)
# Changing this string (or the package list) makes the next start rebuild the chroot.
BUILD_ID="batchml-htcondor-chroot v1 $SUITE ${ROOT_PACKAGES[*]}"
READY_TIMEOUT=60
# The Python job users run in the pool (see build_pool_venv), the file its
# requirements come from, and what it takes from Debian: torch (on the pool's Python,
# PyPI offers only a CUDA build of several GB; Debian's CPU build is 182 MB of .debs).
POOL_VENV=/opt/batchml-pool-venv
SETUP_CFG="$HERE/../../setup.cfg"
POOL_DEBIAN_PACKAGES=(python3-torch)

# ---------------------------------------------------------------- helpers

MARKER="$ROOT/.batchml-build-complete"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f s", b - a }'; }
T_START=$(now)
T_PHASE=$T_START
phase_done() {
    local t
    t=$(now)
    log "phase '$1' took $(elapsed "$T_PHASE" "$t")"
    T_PHASE=$t
}

# The Debian mirror the host already uses (it may be a local mirror or proxy).
debian_mirror() {
    local mirror
    mirror=$(grep -hoE 'https?://deb\.debian\.org/debian/?([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null | head -n 1 | tr -d '[:space:]' || true)
    echo "${mirror:-http://deb.debian.org/debian}"
}

# ---------------------------------------------------------------- mounts

# Mount points under the chroot, deepest first (children sort after parents).
mounts_under_root() {
    [ -n "$ROOT" ] || return 0
    awk -v root="$ROOT" '$5 == root || index($5, root "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r
}

mount_root() {
    mkdir -p "$SHARED_DIR"
    chmod 1777 "$SHARED_DIR"
    [ -n "$ROOT" ] || return 0
    mkdir -p "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT$SHARED_DIR"
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    mountpoint -q "$ROOT/sys" || mount --bind /sys "$ROOT/sys"
    mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
    mkdir -p "$ROOT/dev/pts" "$ROOT/dev/shm"
    mountpoint -q "$ROOT/dev/pts" || mount --bind /dev/pts "$ROOT/dev/pts"
    mountpoint -q "$ROOT/dev/shm" || mount -t tmpfs -o mode=1777,nosuid,nodev shm "$ROOT/dev/shm"
    mountpoint -q "$ROOT$SHARED_DIR" || mount --bind "$SHARED_DIR" "$ROOT$SHARED_DIR"
}

# Unmount everything under the chroot and prove it: a later `rm -rf` of a folder
# holding a bind mount of /dev or of the shared folder would destroy host files.
unmount_root() {
    [ -n "$ROOT" ] || return 0
    local attempt mount_point mounted
    for attempt in 1 2 3 4 5; do
        mapfile -t mounted < <(mounts_under_root)
        [ "${#mounted[@]}" -eq 0 ] && return 0
        [ "$attempt" -gt 1 ] && sleep 0.5
        for mount_point in "${mounted[@]}"; do
            umount "$mount_point" 2>/dev/null || umount -l "$mount_point" 2>/dev/null || true
        done
    done
    mapfile -t mounted < <(mounts_under_root)
    [ "${#mounted[@]}" -eq 0 ] || die "still mounted under $ROOT: ${mounted[*]}"
}

# ---------------------------------------------------------------- building

build_root() {
    if [ -z "$ROOT" ]; then
        # Package scripts must not start a condor_master of their own: this script does.
        local policy=/usr/sbin/policy-rc.d own_policy=""
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy"
            chmod 755 "$policy"
            own_policy=1
        fi
        apt_install "${ROOT_PACKAGES[@]}" || { [ -z "$own_policy" ] || rm -f "$policy"; die "apt failed"; }
        [ -z "$own_policy" ] || rm -f "$policy"
        return 0
    fi
    if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$BUILD_ID" ]; then
        log "chroot $ROOT already built"
        return 0
    fi
    if [ -e "$ROOT" ]; then
        log "removing the incomplete or outdated chroot $ROOT"
        stop_daemons
        unmount_root
        [ -z "$(mounts_under_root)" ] || die "refusing to remove $ROOT: something is mounted under it"
        rm -rf --one-file-system "$ROOT"
    fi
    apt_install debootstrap
    mkdir -p "$(dirname "$ROOT")"
    local mirror build_log="$BATCHML_SERVICES_DIR/htcondor-build.log"
    mirror=$(debian_mirror)
    : >"$build_log"
    log "debootstrap --variant=minbase $SUITE $ROOT $mirror (log: $build_log)"
    env -i PATH="$CLEAN_PATH" LANG=C.UTF-8 \
        debootstrap --variant=minbase "$SUITE" "$ROOT" "$mirror" >>"$build_log" 2>&1 ||
        { tail -n 30 "$build_log" >&2; die "debootstrap failed"; }
    phase_done debootstrap
    # Package scripts must not start daemons: this script starts them.
    printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
    chmod 755 "$ROOT/usr/sbin/policy-rc.d"
    sync_host_files
    mount_root
    log "installing ${ROOT_PACKAGES[*]} in the chroot"
    in_root apt-get update -qq >>"$build_log" 2>&1 ||
        { tail -n 30 "$build_log" >&2; die "apt-get update in the chroot failed"; }
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${ROOT_PACKAGES[@]}" >>"$build_log" 2>&1 ||
        { tail -n 30 "$build_log" >&2; die "apt-get install in the chroot failed"; }
    in_root apt-get clean
    sync_host_files
    # Written last: a chroot without this marker is rebuilt from scratch.
    echo "$BUILD_ID" >"$MARKER"
    phase_done "install htcondor in the chroot"
}

# Name resolution and the host's extra CA certificates (pip behind a TLS proxy).
sync_host_files() {
    [ -n "$ROOT" ] || return 0
    rm -f "$ROOT/etc/hosts" "$ROOT/etc/resolv.conf"
    cp -L /etc/hosts "$ROOT/etc/hosts"
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    local src=/usr/local/share/ca-certificates dst="$ROOT/usr/local/share/ca-certificates"
    local stamp="$ROOT/etc/ssl/certs/.batchml-synced"
    [ -d "$src" ] || return 0
    if ! diff -rq "$src" "$dst" >/dev/null 2>&1 || [ ! -f "$stamp" ]; then
        rm -rf "$dst"
        cp -a "$src" "$dst"
        if [ -x "$ROOT/usr/sbin/update-ca-certificates" ]; then
            in_root update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the chroot"
            touch "$stamp"
        fi
    fi
}

# ---------------------------------------------------------------- users and config

# The submit user: same uid and gid on the host and in the chroot, so the owner
# of a file in the shared folder reads the same on both sides.
ensure_submit_user() {
    local uid gid
    if getent passwd "$SUBMIT_USER" >/dev/null; then
        uid=$(id -u "$SUBMIT_USER")
        gid=$(id -g "$SUBMIT_USER")
    else
        uid=$FIRST_SUBMIT_UID
        while getent passwd "$uid" >/dev/null || getent group "$uid" >/dev/null ||
            { [ -n "$ROOT" ] && in_root getent passwd "$uid" >/dev/null; }; do
            uid=$((uid + 1))
        done
        gid=$uid
        getent group "$SUBMIT_USER" >/dev/null || groupadd -g "$gid" "$SUBMIT_USER"
        gid=$(getent group "$SUBMIT_USER" | cut -d: -f3)
        useradd -u "$uid" -g "$gid" -m -s /bin/bash -c "batchml test jobs" "$SUBMIT_USER"
        log "created user $SUBMIT_USER (uid $uid) on the host"
    fi
    [ -n "$ROOT" ] || return 0
    if ! in_root getent group "$SUBMIT_USER" >/dev/null; then
        in_root groupadd -g "$gid" "$SUBMIT_USER"
    elif [ "$(in_root getent group "$SUBMIT_USER" | cut -d: -f3)" != "$gid" ]; then
        in_root groupmod -g "$gid" "$SUBMIT_USER"
    fi
    if ! in_root getent passwd "$SUBMIT_USER" >/dev/null; then
        in_root useradd -u "$uid" -g "$gid" -m -s /bin/bash -c "batchml test jobs" "$SUBMIT_USER"
    elif [ "$(in_root id -u "$SUBMIT_USER")" != "$uid" ]; then
        in_root usermod -u "$uid" -g "$gid" "$SUBMIT_USER"
    fi
}

write_pool_config() {
    local file="$ROOT/etc/condor/config.d/$POOL_CONFIG_NAME"
    cat >"$file.tmp" <<'EOF'
# Written by tests/services/htcondor.sh: the batchml integration-test pool.
use ROLE : Personal
CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = 127.0.0.1:9618
NETWORK_INTERFACE = 127.0.0.1
# Else the shadow may pick an IPv6 address nothing listens on.
ENABLE_IPV6 = False

# 8 slots' worth of CPUs (oversubscribes a small machine) in one partitionable slot.
NUM_CPUS = 8
use FEATURE : PartitionableSlot

# Four simulated "Tesla V100-PCIE-16GB": jobs get CUDA_VISIBLE_DEVICES and
# _CONDOR_AssignedGPUs set to GPU ids.
use FEATURE : GPUs
GPU_DISCOVERY_EXTRA = -simulate:2,4

# Submit-to-running in about a second instead of 15-19 s.
SCHEDD_MIN_INTERVAL = 1
SCHEDD_INTERVAL = 5
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_CYCLE_DELAY = 1
NEGOTIATOR_MIN_INTERVAL = 1
UPDATE_INTERVAL = 5

# In a chroot whose / is not a mount point the starter cannot set up a private
# /tmp ("errno=22 Invalid argument"); jobs see the real /tmp instead.
MOUNT_UNDER_SCRATCH =
MAIL = /bin/true

# Host clients (htcondor2 bindings) authenticate with an IDTOKEN as the submit user;
# local tools inside the pool keep using FS.
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS
EOF
    mv -f "$file.tmp" "$file"
}

# Created from inside the pool: some of these paths are absolute symlinks there
# (/var/lock -> /run/lock) that would resolve to host folders from outside.
prepare_pool_dirs() {
    local dirs=(/run/condor /var/lock/condor /var/spool/condor /var/lib/condor
        /var/lib/condor/execute /var/log/condor)
    in_root mkdir -p "${dirs[@]}"
    in_root chown condor:condor "${dirs[@]}"
    in_root chmod 755 "${dirs[@]}"
}

# ---------------------------------------------------------------- daemons

master_pid() {
    local pid
    pid=$(cat "$ROOT$MASTER_PID_FILE" 2>/dev/null || true)
    [ -n "$pid" ] && is_alive "$pid" || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = condor_master ] || return 1
    [ "$(readlink "/proc/$pid/root")" = "${ROOT:-/}" ] || return 1
    echo "$pid"
}

# The pool answers: the startd advertises all GPUs and the schedd answers a query.
pool_answers() {
    [ -z "$ROOT" ] || [ -f "$MARKER" ] || return 1
    [ -z "$ROOT" ] || mountpoint -q "$ROOT/proc" || return 1
    local gpus
    # Captured, not piped into `grep -q`: an early grep exit would SIGPIPE the tool.
    gpus=$(in_root timeout 10 condor_status -startd -af TotalGPUs 2>/dev/null) || return 1
    grep -qx "$GPUS" <<<"$gpus" || return 1
    in_root timeout 10 condor_q -totals >/dev/null 2>&1
}

start_master() {
    if [ -f "$ROOT$MASTER_PID_FILE" ] && ! master_pid >/dev/null; then
        log "removing the stale master PID file"
        rm -f "$ROOT$MASTER_PID_FILE"
    fi
    # Daemonizes; its output goes to the logs, never to our stdout (callers may be
    # reading it through a pipe that would then never close), and it must not
    # inherit the lock on fd 9 (no later start or stop could take it).
    in_root condor_master -pidfile "$MASTER_PID_FILE" </dev/null >/dev/null 2>&1 9>&- ||
        die "condor_master did not start"
}

show_logs() {
    local f
    for f in MasterLog CollectorLog NegotiatorLog SchedLog StartLog; do
        [ -f "$ROOT/var/log/condor/$f" ] || continue
        log "--- last lines of /var/log/condor/$f"
        tail -n 15 "$ROOT/var/log/condor/$f" >&2
    done
}

# pids_in_pool: every process of the pool (in the chroot: whose root is the chroot).
pids_in_pool() {
    local proc pid target
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        [ "$pid" != "$$" ] || continue
        if [ -n "$ROOT" ]; then
            target=$(readlink "$proc/root" 2>/dev/null || true)
            [ "$target" = "$ROOT" ] && echo "$pid"
        else
            target=$(readlink "$proc/exe" 2>/dev/null || true)
            case "$target" in /usr/sbin/condor_* | /usr/bin/condor_* | /usr/libexec/condor/*) echo "$pid" ;; esac
        fi
    done
}

signal_and_wait() {
    local signal=$1 seconds=$2 pid=$3
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + seconds))
    while is_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    ! is_alive "$pid"
}

stop_daemons() {
    local pid pids
    if pid=$(master_pid); then
        log "stopping condor_master (pid $pid)"
        in_root timeout 15 condor_off -fast -master >/dev/null 2>&1 || true
        local deadline=$((SECONDS + 15))
        while is_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
        is_alive "$pid" && { signal_and_wait TERM 10 "$pid" || signal_and_wait QUIT 5 "$pid" ||
            signal_and_wait KILL 5 "$pid" || true; }
    fi
    rm -f "$ROOT$MASTER_PID_FILE"
    mapfile -t pids < <(pids_in_pool)
    [ "${#pids[@]}" -eq 0 ] && return 0
    log "terminating ${#pids[@]} leftover pool processes: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 25); do
        mapfile -t pids < <(pids_in_pool)
        [ "${#pids[@]}" -eq 0 ] && return 0
        sleep 0.2
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.5
}

# ---------------------------------------------------------------- the pool's Python

# The requirements listed under KEY in setup.cfg, one per line (no host Python needed):
# install_requires, or an extra such as torch.
setup_cfg_list() {
    awk -v key="$1" '$0 ~ "^" key " *=" { f = 1; next } f && /^[ \t]+[^ \t]/ { print $1; next } f { exit }' \
        "$SETUP_CFG"
}

# pool_apt_install PKG...: install Debian packages where the pool lives, when missing.
# No chroot rebuild and no daemon restart: tests may be using the pool.
pool_apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        # shellcheck disable=SC2016  # ${Status} is dpkg-query's field, not a shell variable
        in_root dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing ${missing[*]} in the pool"
    in_root apt-get update -qq &&
        in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" &&
        in_root apt-get clean
}

# A venv of the pool's own python3 with batchml's dependencies and its torch extra (for
# `batchml demo`), readable by the submit user. dask workers started as HTCondor jobs
# run as that user, who cannot read the host's venv (it lives under /root), and a dask
# driver and its workers need the same Python and packages (cloudpickle moves functions
# by value only within one Python version). So the tests that drive a dask cluster run
# their driver with this Python, inside the pool, with the batchml sources of the
# checkout on sys.path. torch is Debian's, seen through --system-site-packages (pip
# finds it installed and fetches no CUDA build). Kept in the chroot between runs and
# rebuilt only when the requirements or the pool's Python change.
build_pool_venv() {
    local venv="$ROOT$POOL_VENV" stamp wanted build_log="$BATCHML_SERVICES_DIR/htcondor-venv.log"
    local base=() extras=() requirements=()
    mapfile -t base < <(setup_cfg_list install_requires)
    mapfile -t extras < <(setup_cfg_list torch)
    if [ "${#base[@]}" -eq 0 ] || [ "${#extras[@]}" -eq 0 ]; then
        die "no install_requires or torch extra found in $SETUP_CFG"
    fi
    requirements=("${base[@]}" "${extras[@]}" "pytest>=8.0")
    stamp="$venv/.batchml-requirements"
    wanted="$(in_root python3 --version) ${POOL_DEBIAN_PACKAGES[*]} ${requirements[*]}"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
        log "pool venv $POOL_VENV is up to date"
        return 0
    fi
    log "building the pool venv $POOL_VENV (log: $build_log)"
    rm -rf --one-file-system "$venv"
    : >"$build_log"
    { pool_apt_install "${POOL_DEBIAN_PACKAGES[@]}" &&
        in_root python3 -m venv --system-site-packages "$POOL_VENV" &&
        in_root "$POOL_VENV/bin/pip" install --quiet --disable-pip-version-check \
            "${requirements[@]}"; } >>"$build_log" 2>&1 ||
        { tail -n 30 "$build_log" >&2; die "building the pool venv failed"; }
    chmod -R a+rX "$venv"
    echo "$wanted" >"$stamp"
    phase_done "pool venv"
}

# ---------------------------------------------------------------- host-side access

# Client config and token for the htcondor2 bindings on the host, and the
# wrappers that run the real tools in the pool as the submit user.
publish_access() {
    local uid_domain fs_domain schedd_address_file token
    uid_domain=$(in_root condor_config_val UID_DOMAIN)
    schedd_address_file=$ROOT$(in_root condor_config_val SCHEDD_ADDRESS_FILE)
    fs_domain=$(in_root condor_config_val FILESYSTEM_DOMAIN)
    mkdir -p "$STATE_DIR" "$TOKEN_DIR" "$BIN_DIR"
    chmod 755 "$STATE_DIR" "$BIN_DIR"
    chmod 700 "$TOKEN_DIR"
    token=$(in_root condor_token_create -identity "$SUBMIT_USER@$uid_domain") ||
        die "condor_token_create failed"
    # HTCondor silently ignores a token file readable by others.
    (umask 077 && printf '%s\n' "$token" >"$TOKEN_DIR/.$SUBMIT_USER.tmp")
    chmod 600 "$TOKEN_DIR/.$SUBMIT_USER.tmp"
    mv -f "$TOKEN_DIR/.$SUBMIT_USER.tmp" "$TOKEN_DIR/$SUBMIT_USER"

    cat >"$CLIENT_CONFIG.tmp" <<EOF
# Written by tests/services/htcondor.sh: host-side client config of the test pool.
# Clients using it (the htcondor2 bindings) act as $SUBMIT_USER@$uid_domain.
CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = 127.0.0.1:9618
# Lets htcondor2.Schedd() with no argument find the pool's schedd, as on a submit
# node (SCHEDD_HOST = <name> would make that fail with "Unable to locate local daemon").
SCHEDD_ADDRESS_FILE = $schedd_address_file
NETWORK_INTERFACE = 127.0.0.1
ENABLE_IPV6 = False
UID_DOMAIN = $uid_domain
FILESYSTEM_DOMAIN = $fs_domain
SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS
SEC_TOKEN_DIRECTORY = $TOKEN_DIR
LOG = $STATE_DIR
EOF
    mv -f "$CLIENT_CONFIG.tmp" "$CLIENT_CONFIG"

    local runner="$BIN_DIR/batchml-pool-run" tool
    {
        echo '#!/bin/bash'
        echo '# Written by tests/services/htcondor.sh. Runs the real HTCondor tool this link is'
        echo '# named after inside the test pool, as its submit user (not a test double).'
        echo '# The current folder is kept when it is the same folder inside the pool (e.g.'
        echo "# under $SHARED_DIR); otherwise the tool runs in the submit user's home."
        echo 'set -euo pipefail'
        echo '# batchml-pool-python runs the pool venv'"'"'s python instead (see build_pool_venv).'
        printf 'ROOT=%q\nRUN_AS=%q\nCLEAN_PATH=%q\nPOOL_PYTHON=%q\n' \
            "$ROOT" "$SUBMIT_USER" "$CLEAN_PATH" "$POOL_VENV/bin/python"
        cat <<'EOF'
tool=${0##*/}
case "$tool" in
    condor_*) ;;
    batchml-pool-python) tool=$POOL_PYTHON ;;
    *) echo "$0: call me through one of the condor_* or batchml-pool-python links" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root (it switches to $RUN_AS)" >&2; exit 2; }
home=$(getent passwd "$RUN_AS" | cut -d: -f6)
dir=${home:-/}
if [ -d "$ROOT$PWD" ] && [ "$ROOT$PWD" -ef "$PWD" ]; then dir=$PWD; fi
prefix=()
[ -z "$ROOT" ] || prefix=(chroot "$ROOT")
exec "${prefix[@]}" /usr/bin/env -i -C "$dir" PATH="$CLEAN_PATH" LANG=C.UTF-8 \
    HOME="${home:-/}" USER="$RUN_AS" LOGNAME="$RUN_AS" \
    runuser -u "$RUN_AS" -- "$tool" "$@"
EOF
    } >"$runner.tmp"
    chmod 755 "$runner.tmp"
    mv -f "$runner.tmp" "$runner"
    for tool in condor_submit condor_q condor_rm condor_status condor_history batchml-pool-python; do
        ln -sfn batchml-pool-run "$BIN_DIR/$tool"
    done
}

publish_env() {
    write_env htcondor \
        "CONDOR_CONFIG=$CLIENT_CONFIG" \
        "BATCHML_HTCONDOR_ROOT=$ROOT" \
        "BATCHML_HTCONDOR_USER=$SUBMIT_USER" \
        "BATCHML_HTCONDOR_SHARED=$SHARED_DIR" \
        "BATCHML_HTCONDOR_BIN=$BIN_DIR" \
        "BATCHML_HTCONDOR_GPUS=$GPUS"
}

# ---------------------------------------------------------------- commands

cmd_start() {
    if pool_answers && master_pid >/dev/null && { [ -z "$ROOT" ] || mountpoint -q "$ROOT$SHARED_DIR"; }; then
        log "the pool already answers; re-publishing its env file"
        build_pool_venv
        publish_access
        publish_env
        phase_done "check and publish"
        return 0
    fi
    remove_env htcondor
    build_root
    mount_root
    sync_host_files
    ensure_submit_user
    prepare_pool_dirs
    write_pool_config
    phase_done "mounts, users and config"

    if master_pid >/dev/null; then
        log "a condor_master runs but the pool does not answer yet; waiting"
        if ! wait_for 30 "the running pool" pool_answers; then
            log "restarting the pool"
            stop_daemons
        fi
    fi
    if ! master_pid >/dev/null; then
        start_master
        if ! wait_for "$READY_TIMEOUT" "the pool (startd with $GPUS GPUs, schedd)" pool_answers; then
            show_logs
            die "the pool did not become ready; see the logs above (then run '$0 stop')"
        fi
    fi
    phase_done "daemons ready"
    build_pool_venv
    publish_access
    publish_env
    phase_done "token, client config, wrappers"
    log "pool ready in $(elapsed "$T_START" "$(now)") (env: $BATCHML_SERVICES_DIR/htcondor.env)"
}

cmd_stop() {
    remove_env htcondor
    if [ -z "$ROOT" ] || [ -d "$ROOT" ]; then
        stop_daemons
    fi
    unmount_root
    rm -rf "$STATE_DIR"
    log "stopped in $(elapsed "$T_START" "$(now)")${ROOT:+ (chroot kept in $ROOT)}"
}

cmd_status() {
    if pool_answers; then
        log "the pool answers"
        return 0
    fi
    log "the pool does not answer"
    return 1
}

main() {
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    # One start/stop at a time: CI and a session may share the machine.
    exec 9>"$BATCHML_SERVICES_DIR/.htcondor.lock"
    flock -w 300 9 || die "another htcondor.sh is still running"
    case "${1:-}" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        *) die "usage: $0 start|stop|status" ;;
    esac
}

main "$@"
