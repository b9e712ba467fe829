# mnist-course: `make course` runs the whole course, `make test` runs the tests.
# Both start with `make setup`, which is idempotent and quick when everything is there.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The host venv takes torch 2.14.1 + torchvision 0.29.1 (the CPU images use torch 2.13.0 CPU).
TORCH := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
# The venv's commands (mnist-course, mnist-train, torch-model-archiver) come first on PATH for every
# recipe, and so for the notebooks run by them: lessons type these commands as a terminal would.
export PATH := $(abspath $(BIN)):$(PATH)
# Each stage's time (tools/timed.sh), summed per stage for this make run and printed at its end.
ifndef MNIST_COURSE_STAGES
MNIST_COURSE_STAGES := $(abspath build/stages-$(shell date +%Y%m%d-%H%M%S).txt)
endif
export MNIST_COURSE_STAGES
TIMED := bash tools/timed.sh

.PHONY: setup venv course course-quick test lab doctor clean-nbs check-clean

setup: venv
	$(TIMED) engine-data-images $(BIN)/mnist-course setup
	$(TIMED) podman-images $(BIN)/mnist-course k8s load
	$(BIN)/mnist-course doctor

venv: $(STAMP)

$(STAMP): setup.py settings.ini
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (3.10+)"; exit 1; }
	$(TIMED) venv $(PYTHON) tools/make_venv.py $(VENV) $(TORCH)
	$(BIN)/python -c "import mnist_course, torch, torchvision, papermill, nbdev, docker"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "mnist-course (.venv)" >/dev/null
	touch $(STAMP)

# Every notebook in order with the full parameters; executed copies and the course as a static site
# (build/course/index.html) in build/course/.
course: setup
	$(BIN)/python -m tools.run_course $(if $(QUICK),--quick)

# The same in quick mode (quick=True, as the tests run it): short training and benchmark runs.
course-quick: setup
	$(BIN)/python -m tools.run_course --quick

# 1. notebooks clean and package in sync  2. nbdev_test (no docker) beside a full disk (tmpfs, as
# root), JupyterLab in headless Chromium and the lessons' shape  3. every notebook under papermill with
# CI parameters (as root; lessons 01, 07 and 09 as two non-root learners side by side on the same
# engine, after root's), both servers' model process killed under load, then the course site in
# Chromium  4. other engines: a rootless engine of a test user (publish mode, images handed over as a
# file), and a test engine whose Docker Hub mirror is a registry on 127.0.0.1 (the online branch)
# 5. linux/arm64 under qemu: its images (cached), 20 batches of training, both servers' answers against amd64's.
# After 2, 3, 4 and 5, nothing the tests started may be left running.
test: setup check-clean
	$(TIMED) nbdev_test-beside-lab bash tests/beside.sh "$(BIN)/nbdev_test --n_workers 2 --timing" \
	  $(BIN)/python -m pytest tests/test_browser_lab.py tests/test_lessons.py tests/test_full_disk.py \
	  tests/test_zz_leftovers.py
	$(TIMED) notebooks-learners-site $(BIN)/python -m pytest tests/test_notebooks.py tests/test_faults.py \
	  tests/test_learners.py tests/test_browser_site.py tests/test_zz_leftovers.py
	$(TIMED) other-engines $(BIN)/python -m pytest tests/test_rootless_engine.py tests/test_online_bases.py \
	  tests/test_zz_leftovers.py
	$(TIMED) arm64-emulated $(BIN)/python -m pytest -s tests/test_arm64.py tests/test_zz_leftovers.py
	@$(TIMED) --summary

check-clean:
	$(BIN)/nbdev_clean
	$(BIN)/nbdev_export
	@if [ -n "$$(git status --porcelain -- nbs mnist_course)" ]; then \
	  git status --short -- nbs mnist_course; git --no-pager diff --stat -- nbs mnist_course; \
	  echo "notebooks are not clean or the package is out of sync: run nbdev_clean && nbdev_export and commit"; exit 1; fi

# JupyterLab on 127.0.0.1 with nbs/ and the project's lab settings (tools/lab.py; the browser test starts the same).
lab: setup
	$(BIN)/python -m tools.lab

doctor: venv
	$(BIN)/mnist-course doctor
