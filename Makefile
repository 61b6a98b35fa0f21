# The two commands of the README, and the few steps behind them.
# `make demo` needs only Python; `make test` also installs the Debian packages
# of the real test services (Slurm, HTCondor, XRootD) and must run as root.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.batchml-installed

.PHONY: demo test venv lint services-start services-stop clean gpu-wheels device-check

demo: $(STAMP)
	$(BIN)/batchml demo

test:
	bash tests/run.sh

venv: $(STAMP)

# torch==2.13.0 first: that release is a CPU wheel on this kind of machine;
# an unpinned torch would pull a multi-GB CUDA build.
# constraints.txt: the tested release of each engine (setup.cfg bounds them below the next major).
$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[torch,xrootd,triton,mlflow,test]'
	# The real Triton server the triton tests serve packages with (see setup.cfg's triton extra)
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt 'nvidia-pytriton>=0.7,<0.8'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check batchml tests benchmarks
	$(BIN)/mypy

# The real-GPU check (tests/gpu/device_check.sh): `make gpu-wheels` here fetches what the GPU
# machine lacks (<= 64 MiB, cp312); `make device-check` there (no venv needed) or here (CPU mode).
gpu-wheels: $(STAMP)
	bash tests/gpu/device_check.sh --download gpu-wheels

device-check:
	bash tests/gpu/device_check.sh

services-start:
	bash tests/services/all.sh start

services-stop:
	bash tests/services/all.sh stop

clean:
	rm -rf $(VENV) batchml-demo build *.egg-info gpu-wheels
