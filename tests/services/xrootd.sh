#!/usr/bin/env bash
# Start, stop or check a real, standalone XRootD server on 127.0.0.1 for the
# integration tests.  Usage (as root): bash tests/services/xrootd.sh start|stop|restart|status
#
# It exports one scratch folder, made by `start` with
# `mktemp -d /tmp/batchml-xrootd-data.XXXXXX` (mode 1777, so root-run tests can
# write into it and the unprivileged `xrootd` user can read what they wrote).
# The export is the folder's absolute path, so a file written locally as
# $BATCHML_XROOTD_DATA/x.root is read as
#     ${BATCHML_XROOTD_URL}${BATCHML_XROOTD_DATA}/x.root
#     = root://127.0.0.1:21094//tmp/batchml-xrootd-data.AbC123/x.root
# The double slash after the port is required: with a single one
# (root://127.0.0.1:21094/tmp/...) the path is relative and the server refuses
# it ("[3010] Opening relative path ... is disallowed").
#
# Published in "$BATCHML_SERVICES_DIR/xrootd.env" once the server answers:
#   BATCHML_XROOTD_URL=root://127.0.0.1:PORT/  BATCHML_XROOTD_DATA=<folder>
#   BATCHML_XROOTD_PORT=PORT        (PORT: $BATCHML_XROOTD_PORT, default 21094)
set -euo pipefail

SERVICE_NAME=xrootd
# shellcheck source=tests/services/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT="${BATCHML_XROOTD_PORT:-21094}"
RUN_DIR="$BATCHML_SERVICES_DIR/xrootd"
CFG="$RUN_DIR/xrootd.cfg"
LOG_FILE="$RUN_DIR/xrootd.log"
PID_FILE="$RUN_DIR/server.pid"
# xrootd makes its admin path mode 700 and fills it; keep that apart from our files.
ADMIN_DIR="$RUN_DIR/admin"
# The data folder of the running server: the next `start` or `stop` must find
# the folder an earlier run made, even from another shell or session.
DATA_STATE="$RUN_DIR/data-dir"
DATA_TEMPLATE="/tmp/batchml-xrootd-data.XXXXXX"
SERVER_USER=xrootd
URL="root://127.0.0.1:$PORT/"

[[ "$PORT" =~ ^[0-9]+$ ]] || die "BATCHML_XROOTD_PORT must be a number, not '$PORT'"

# xrd CMD...: run an xrdfs command against our port that can never hang: one
# connection attempt (a closed port otherwise retries for 8 minutes) and a hard
# time limit (a stopped server accepts the connection but never answers).
xrd() {
    XRD_CONNECTIONRETRY=1 XRD_CONNECTIONWINDOW=3 XRD_REQUESTTIMEOUT=4 \
        timeout -k 2 5 xrdfs "root://127.0.0.1:$PORT" "$@"
}

probe() { xrd query config version >/dev/null 2>&1; }

recorded_data_dir() { cat "$DATA_STATE" 2>/dev/null || true; }

# serves_data DIR: the server answers and exports DIR, i.e. it is the one we started.
serves_data() { probe && xrd stat "$1" >/dev/null 2>&1; }

is_xrootd_pid() { [ -n "$1" ] && is_alive "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = xrootd ]; }

# listening_inodes: socket inodes listening on $PORT, IPv4 or IPv6.
listening_inodes() {
    local hex
    hex=$(printf '%04X' "$PORT")
    awk -v port=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == port { print $10 }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u
}

port_in_use() { [ -n "$(listening_inodes)" ]; }

# port_owner_pids: PIDs of the processes listening on $PORT (from /proc, because
# minimal images have neither ss nor fuser).
port_owner_pids() {
    local inode
    listening_inodes | while read -r inode; do
        find /proc/[0-9]*/fd -maxdepth 1 -lname "socket:\\[$inode\\]" 2>/dev/null | cut -d/ -f3  || true
    done | sort -u
}

# stop_server: stop our server by its PID file, then any xrootd still holding the
# port (a stale server from an earlier run whose PID file was lost). A process
# that is not xrootd is never killed: its PID file entry is stale (PID reused).
stop_server() {
    local pid
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    if is_xrootd_pid "$pid"; then
        log "stopping xrootd (pid $pid)"
        kill -CONT "$pid" 2>/dev/null || true  # a stopped (SIGSTOP) server ignores TERM
        stop_pidfile "$PID_FILE"
    fi
    rm -f "$PID_FILE"
    for pid in $(port_owner_pids); do
        is_xrootd_pid "$pid" || continue
        log "stopping stale xrootd on port $PORT (pid $pid)"
        kill -CONT "$pid" 2>/dev/null || true
        printf '%s\n' "$pid" > "$PID_FILE"
        stop_pidfile "$PID_FILE"
    done
}

remove_data_dir() {
    local dir
    dir=$(recorded_data_dir)
    # Only ever delete a folder this script made.
    if [[ "$dir" == /tmp/batchml-xrootd-data.?????? && -d "$dir" ]]; then
        rm -rf -- "$dir"
    fi
    rm -f "$DATA_STATE"
}

# remove_server_leftovers: xrootd's runtime files. It also writes
# /tmp/xrootd.<instance>.env, shared by every unnamed instance: remove it only
# when it names our config.
remove_server_leftovers() {
    local envfile=/tmp/xrootd.anon.env
    if [ -f "$envfile" ] && grep -qF "cfgfn=$CFG&" "$envfile"; then
        rm -f "$envfile"
    fi
    rm -rf "$ADMIN_DIR"
}

publish_env() {
    write_env xrootd "BATCHML_XROOTD_URL=$URL" "BATCHML_XROOTD_DATA=$1" "BATCHML_XROOTD_PORT=$PORT"
}

# as_server_user CMD...: run CMD as the user xrootd runs as, to check its access.
as_server_user() { setpriv --reuid="$SERVER_USER" --regid="$SERVER_USER" --init-groups -- "$@"; }

make_data_dir() {
    local dir
    dir=$(mktemp -d "$DATA_TEMPLATE")
    chmod 1777 "$dir"
    printf '%s\n' "$dir" > "$DATA_STATE"
    # Every parent must be traversable by the xrootd user, else reads fail with [3010].
    as_server_user test -r "$dir" -a -x "$dir" \
        || die "user $SERVER_USER cannot enter $dir (check the modes of its parents)"
    printf '%s\n' "$dir"
}

write_config() {
    cat > "$CFG" <<EOF
# Written by tests/services/xrootd.sh; a standalone server (no all.role: that
# would make it wait for a cluster manager).
xrd.port $PORT
xrd.allow host localhost
all.export $1
all.adminpath $ADMIN_DIR
all.pidpath $ADMIN_DIR
EOF
}

# ready_or_dead PID DIR: stop waiting once the server serves DIR, or once it died.
ready_or_dead() { ! is_alive "$1" || serves_data "$2"; }

start() {
    local pid data
    apt_install xrootd-server xrootd-client
    id "$SERVER_USER" >/dev/null 2>&1 || die "user $SERVER_USER missing (the xrootd-server package creates it)"
    mkdir -p "$RUN_DIR"
    chmod 755 "$RUN_DIR"
    chown "$SERVER_USER:$SERVER_USER" "$RUN_DIR"

    data=$(recorded_data_dir)
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    if [ -n "$data" ] && [ -d "$data" ] && is_xrootd_pid "$pid" && serves_data "$data"; then
        log "already running (pid $pid) on port $PORT, exporting $data"
        publish_env "$data"
        return 0
    fi

    # Anything left from an earlier run (stale PID file, server, folder, env) goes first.
    remove_env xrootd
    stop_server
    remove_data_dir
    remove_server_leftovers
    if port_in_use; then
        die "port $PORT is taken by something other than our xrootd (pids: $(port_owner_pids | paste -sd ' ')); set BATCHML_XROOTD_PORT"
    fi
    install -d -o "$SERVER_USER" -g "$SERVER_USER" -m 700 "$ADMIN_DIR"
    as_server_user test -w "$RUN_DIR" \
        || die "user $SERVER_USER cannot write $RUN_DIR (check the modes of its parents)"

    data=$(make_data_dir)
    write_config "$data"
    : > "$LOG_FILE"
    chown "$SERVER_USER:$SERVER_USER" "$LOG_FILE"

    launch "$data" || {
        stop_server
        remove_data_dir
        remove_server_leftovers
        die "xrootd failed to start (config $CFG, log $LOG_FILE)"
    }
    publish_env "$data"
}

# launch DATA: start the server process on the written config and wait until it serves DATA.
launch() {
    local data=$1 pid t0 elapsed_ms
    t0=$(date +%s%N)
    # As root xrootd refuses to run: -R drops to the package's user. setsid and
    # the redirections detach it, so callers that capture our output do not wait for it.
    setsid xrootd -c "$CFG" -l "$LOG_FILE" -R "$SERVER_USER" </dev/null >>"$RUN_DIR/xrootd.out" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" > "$PID_FILE"

    sleep 0.1  # wait_for polls every 0.5 s; one short head start usually saves a round
    if ! wait_for 20 "xrootd on port $PORT" ready_or_dead "$pid" "$data" || ! is_alive "$pid"; then
        log "xrootd did not become ready; last log lines:"
        tail -n 20 "$LOG_FILE" "$RUN_DIR/xrootd.out" >&2 || true
        return 1
    fi
    elapsed_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    log "ready in ${elapsed_ms} ms: pid $pid, $URL exporting $data"
}

# restart: a new server process on the same port, data folder and env file, as
# after a crash or an update on a storage node (clients see dropped connections).
restart() {
    local data
    data=$(recorded_data_dir)
    [ -n "$data" ] && [ -d "$data" ] && [ -f "$CFG" ] || die "not started: run '$0 start' first"
    stop_server
    launch "$data" || die "xrootd failed to restart (config $CFG, log $LOG_FILE)"
}

stop() {
    stop_server
    remove_data_dir
    remove_server_leftovers
    remove_env xrootd
    log "stopped"
}

status() {
    if probe; then
        log "answering on port $PORT ($(xrd query config version 2>/dev/null || true))"
        return 0
    fi
    log "not answering on port $PORT"
    return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart) restart ;;
    status) status ;;
    *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
