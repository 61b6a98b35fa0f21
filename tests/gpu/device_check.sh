#!/usr/bin/env bash
# The real-GPU check (issue 20), ready for the day a GPU machine is lent: one prepared run.
#
#   bash tests/gpu/device_check.sh                 (make device-check)
#   bash tests/gpu/device_check.sh --download DIR  (make gpu-wheels: what the GPU machine lacks)
#
# With a GPU (nvidia-smi lists one) it runs, on GPU 0: the gpu-marked tests; demo-MLP trials
# at 1, 2, 4 and 8 per GPU in processes of their own (CUDA initialised in the trial, never in
# the driver), printing trials per hour per GPU against one at a time; the data module's
# reading process beside a CUDA training loop; a model trained on the GPU, packaged, its ONNX
# validated against torch; and, where nvidia-cuda-mps-control exists, the sharing again under
# MPS. Without a GPU (here, CI) the same steps run their CPU mode and say so: no GPU figures.
#
# The GPU machine has python3 3.12 with CUDA torch and CPU onnxruntime and no network: the
# other packages travel as wheels in ./gpu-wheels (cp312 manylinux or pure Python, 64 MiB at
# most), installed into a throwaway venv that sees the system's torch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

WHEELS=gpu-wheels
LIMIT_MIB=64
# What batchml needs for these steps beyond python3 + torch + onnxruntime (setup.cfg's bounds).
NEEDED=(
    'dask>=2024.8,<2027' 'distributed>=2024.8,<2027' 'dask-jobqueue>=0.9,<0.10'
    'optuna>=4.0,<6' 'optuna-integration>=4.0,<6' 'uproot>=5.3,<6' 'isal>=1.6,<2'
    'awkward>=2.6,<3' 'pyyaml>=6.0,<7' 'pydantic>=2.6,<3' 'rich>=13.0,<16'
    'cryptography>=42,<51' 'psutil>=5.9,<8' 'onnx>=1.16,<2' 'onnxscript>=0.1,<0.8'
    'pytest>=8.0,<10' 'pytest-timeout>=2.3,<3' 'nvidia-ml-py>=12,<14'
)
# Already there with CUDA torch and onnxruntime (their own requirements): not carried.
PRESENT='^(numpy|sympy|mpmath|typing_extensions|jinja2|markupsafe|fsspec|protobuf|packaging)-'

say() { echo "device check: $*"; }

download() {
    local dir=$1 platform=()
    for tag in manylinux_2_28 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
        platform+=(--platform "${tag}_x86_64")
    done
    rm -rf "$dir" && mkdir -p "$dir"
    local python=python3
    [ -x .venv/bin/python ] && python=.venv/bin/python
    "$python" -m pip download --quiet --only-binary=:all: --python-version 3.12 \
        --implementation cp --abi cp312 "${platform[@]}" -c constraints.txt -d "$dir" "${NEEDED[@]}"
    find "$dir" -maxdepth 1 -name '*.whl' -printf '%f\n' | grep -E "$PRESENT" \
        | while read -r wheel; do rm -f "$dir/$wheel"; done
    local mib; mib=$(du -sm "$dir" | cut -f1)
    say "$(find "$dir" -name '*.whl' | wc -l) wheels, ${mib} MiB in $dir"
    [ "$mib" -le "$LIMIT_MIB" ] || { say "more than ${LIMIT_MIB} MiB: drop a wheel"; exit 1; }
}

# The Python to run with: the project's venv where there is one (here, CI); else a throwaway
# venv over the system's python3 (its CUDA torch) with the carried wheels installed.
python_with_batchml() {
    if [ -x .venv/bin/python ]; then
        echo .venv/bin/python
        return
    fi
    [ -d "$WHEELS" ] || { say "no .venv and no $WHEELS/: run 'make gpu-wheels' first" >&2; exit 1; }
    local venv; venv=$(mktemp -d)/venv
    python3 -m venv --system-site-packages "$venv"
    "$venv/bin/python" -m pip install --quiet --no-index --find-links "$WHEELS" "$WHEELS"/*.whl >&2
    echo "$venv/bin/python"
}

MPS_DIR=""
stop_mps() {
    [ -n "$MPS_DIR" ] || return 0
    echo quit | nvidia-cuda-mps-control || true
    rm -rf "$MPS_DIR"
    MPS_DIR=""
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
}

# As a worker job with mps: true does (common/mps.sh.j2): a private daemon for these trials.
start_mps() {
    MPS_DIR=$(mktemp -d)
    export CUDA_MPS_PIPE_DIRECTORY="$MPS_DIR/pipe" CUDA_MPS_LOG_DIRECTORY="$MPS_DIR/log"
    mkdir -m 700 "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    nvidia-cuda-mps-control -d
}

check() {
    local python started=$SECONDS
    python=$(python_with_batchml)
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU 0'; then
        export BATCHML_CHECK_MODE=gpu CUDA_VISIBLE_DEVICES=0
        say "GPU mode on $(nvidia-smi -L | head -n 1)"
        # Only the files that hold gpu-marked tests: collecting the others imports packages
        # (tritonclient, mlflow, ...) the GPU machine does not have.
        local files
        mapfile -t files < <(grep -rlE 'mark\.gpu|pytest\.mark\.gpu' tests --include='test_*.py' || true)
        if [ "${#files[@]}" -gt 0 ]; then
            "$python" -m pytest -m gpu -q -p no:cacheprovider "${files[@]}"
        else
            say "no gpu-marked tests in tests/ yet"
        fi
    else
        export BATCHML_CHECK_MODE=cpu
        say "CPU mode: no GPU here (nvidia-smi lists none), so no GPU figures are measured;"
        say "the gpu-marked tests need one and are not run"
    fi
    "$python" -m tests.gpu.check all
    if [ "$BATCHML_CHECK_MODE" = gpu ] && command -v nvidia-cuda-mps-control >/dev/null; then
        trap stop_mps EXIT
        if start_mps; then
            "$python" -m tests.gpu.check share --label "MPS on: "
        else
            say "the MPS daemon did not start: no MPS run; its log:"
            cat "$CUDA_MPS_LOG_DIRECTORY"/control.log 2>/dev/null || true
        fi
        stop_mps
    elif [ "$BATCHML_CHECK_MODE" = gpu ]; then
        say "no nvidia-cuda-mps-control here: the MPS run is left out"
    fi
    say "done in $((SECONDS - started)) s ($BATCHML_CHECK_MODE mode)"
}

case "${1:-}" in
    --download) download "${2:-$WHEELS}" ;;
    "") check ;;
    *) echo "usage: $0 [--download DIR]" >&2; exit 2 ;;
esac
