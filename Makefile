# Two set-up commands on a fresh machine: `make demo` and `make test`.
# Heavy, version-keyed builds (kube-apiserver, etcd, helm, ...) are cached
# outside the clone in $(KUBETRAIN_CACHE), so reruns are fast.

PYTHON ?= python3.11
VENV ?= .venv
KUBETRAIN_CACHE ?= $(HOME)/.cache/kubetrain
export KUBETRAIN_CACHE
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: demo test bench lint crd venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -e '.[operator,trainer,dev,spark]'
	rm -f $(VENV)/.installed-* && touch $@

data/digits/train: | $(STAMP)
	$(BIN)/kubetrain data digits data/digits

# Train a real model on 2 local worker processes (MultiWorkerMirroredStrategy).
demo: $(STAMP) data/digits/train
	rm -rf runs/digits
	$(BIN)/kubetrain run examples/digits-local.yaml
	@$(BIN)/python -c "import json; m = json.load(open('runs/digits/model/job.json'))['metrics']; \
	print(f\"digits: validation accuracy {m['val_accuracy']:.3f} after 2-worker training\")"

# Everything the tests need (venv, cluster tools), then the whole suite.
test: $(STAMP)
	bash hack/cluster-tools.sh
	bash hack/hdfs-tools.sh
	$(BIN)/ruff check .
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks: each script appends a dated section to benchmarks/results.md.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	bash hack/cluster-tools.sh
	bash hack/hdfs-tools.sh
	$(BIN)/python benchmarks/operator_scale.py --plot
	$(BIN)/python benchmarks/input_pipeline.py
	$(BIN)/python benchmarks/trainer_overhead.py --no-scaling
	$(BIN)/python benchmarks/trainer_overhead.py --no-overhead

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Regenerate manifests/crd.yaml (and the chart's copy) from the API models.
crd: $(STAMP)
	$(BIN)/kubetrain crd > manifests/crd.yaml
	cp manifests/crd.yaml charts/kubetrain/crds/crd.yaml

clean:
	rm -rf runs data .pytest_cache
