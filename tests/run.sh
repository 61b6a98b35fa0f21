#!/usr/bin/env bash
# The full test suite, as `make test` and CI run it, on a machine with nothing
# installed: the virtualenv, Chromium, the Debian packages and daemons of the
# real services (as root), pytest, and the services stopped again whatever happened.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -m slurm -x`); without any, the
# real-GPU check (tests/gpu/device_check.sh) runs first in its CPU mode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ "$(id -u)" -eq 0 ] || { echo "tests/run.sh starts Slurm, HTCondor and XRootD daemons: run it as root" >&2; exit 2; }

started=$SECONDS
make --no-print-directory venv
echo "virtualenv ready ($((SECONDS - started)) s)"

make --no-print-directory lint
echo "lint clean ($((SECONDS - started)) s)"

# The demo's report is opened in headless Chromium (tests/unit/browser.py).
(SERVICE_NAME=chromium; source tests/services/common.sh; apt_install chromium)
echo "chromium ready ($((SECONDS - started)) s)"

trap 'bash tests/services/all.sh stop >/dev/null 2>&1 || true' EXIT
bash tests/services/all.sh start
echo "services ready ($((SECONDS - started)) s)"

set +e
checked=0
if [ "$#" -eq 0 ]; then  # the full run (CI): the real-GPU check's CPU mode too
    bash tests/gpu/device_check.sh
    checked=$?
    echo "device check exit status $checked ($((SECONDS - started)) s)"
fi
.venv/bin/python -m pytest "$@"
status=$?
[ "$status" -ne 0 ] || status=$checked
set -e
echo "pytest exit status $status ($((SECONDS - started)) s in all)"
exit "$status"
