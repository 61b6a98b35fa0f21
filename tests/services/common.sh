# Shared helpers for the scripts that start the real test services.
# Sourced, never run. Every service script:
#   - is idempotent: `start` on a running service re-checks it and exits 0;
#   - writes KEY=VALUE lines to "$BATCHML_SERVICES_DIR/<name>.env" only once the
#     service answered a real probe, so a present env file means "usable";
#   - `stop` undoes everything `start` did (processes, mounts) and removes the env file,
#     and never fails because something was already gone.
set -euo pipefail

BATCHML_SERVICES_DIR="${BATCHML_SERVICES_DIR:-/tmp/batchml-services}"
export BATCHML_SERVICES_DIR
mkdir -p "$BATCHML_SERVICES_DIR"
chmod 755 "$BATCHML_SERVICES_DIR"

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${SERVICE_NAME:-service}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# apt_install PKG...: install Debian packages only when missing; never start them.
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing ${missing[*]}"
    if [ ! -f "$BATCHML_SERVICES_DIR/.apt-updated" ]; then
        apt-get update -qq >&2
        touch "$BATCHML_SERVICES_DIR/.apt-updated"
    fi
    # policy-rc.d keeps package scripts from starting daemons: the scripts start them.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# wait_for SECONDS DESCRIPTION CMD...: retry CMD every 0.5 s until it succeeds.
wait_for() {
    local limit=$1 what=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$deadline" ] && { log "timed out after ${limit}s waiting for $what"; return 1; }
        sleep 0.5
    done
}

# write_env NAME KEY=VALUE...: atomically publish the env file for a ready service.
write_env() {
    local name=$1; shift
    local tmp="$BATCHML_SERVICES_DIR/.$name.env.tmp"
    printf '%s\n' "$@" > "$tmp"
    mv -f "$tmp" "$BATCHML_SERVICES_DIR/$name.env"
}

remove_env() { rm -f "$BATCHML_SERVICES_DIR/$1.env"; }

# stop_pidfile FILE: TERM, wait up to 10 s, then KILL the process named in FILE.
stop_pidfile() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 20); do is_alive "$pid" || break; sleep 0.5; done
        is_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

# is_alive PID: true for a running process, false for a gone or zombie one
# (kill -0 succeeds on zombies).
is_alive() {
    [ -r "/proc/$1/status" ] || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}
