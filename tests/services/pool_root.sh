# Where the HTCondor test pool lives, for the scripts that run things there.
# Sourced, never run (after common.sh).
#
# Debian 12 ships no HTCondor daemons: there the pool runs in a Debian 13 (trixie)
# chroot at $CHROOT_DIR, and ROOT names it. On a Debian 13 host (or any host whose
# apt offers `htcondor`) the pool runs on the host itself: ROOT is empty and
# `in_root` runs commands directly.

CHROOT_DIR=/var/lib/batchml-tests/trixie-htcondor
CLEAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

host_is_debian13() {
    case "$(cat /etc/debian_version 2>/dev/null || true)" in 13* | trixie*) return 0 ;; esac
    local candidate
    candidate=$(apt-cache policy htcondor 2>/dev/null | awk '/Candidate:/ {print $2}' || true)
    [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

if host_is_debian13; then ROOT=""; else ROOT=$CHROOT_DIR; fi

# in_root CMD...: run CMD where the pool lives (the chroot, or the host when ROOT
# is empty) with a clean environment, so host variables such as CONDOR_CONFIG
# (the client config) or PIP_* never reach the daemons or apt.
in_root() {
    if [ -n "$ROOT" ]; then
        chroot "$ROOT" /usr/bin/env -i PATH="$CLEAN_PATH" HOME=/root LANG=C.UTF-8 "$@"
    else
        env -i PATH="$CLEAN_PATH" HOME=/root LANG=C.UTF-8 "$@"
    fi
}

