# Two entry points on a fresh clone: `make run` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN ?= default

.PHONY: setup run test test-fast bench clean

# One venv for training, serving, the HTTP service and Ray, so `make test` covers every path.
$(VENV)/.installed: requirements.txt requirements-serve.txt requirements-ray.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-serve.txt -r requirements-ray.txt
	touch $@

setup: $(VENV)/.installed

# Fetch MSRA, train the default model, export it to ONNX (validated), tag a sample file.
run: setup
	$(PY) -m data.msra
	$(if $(wildcard runs/$(RUN)/metrics.json),@echo "runs/$(RUN) is already trained (delete it to retrain)",$(PY) -m pipeline.train --out runs/$(RUN) $(if $(wildcard runs/$(RUN)/checkpoint),--resume,))
	$(PY) -m export.to_onnx --run runs/$(RUN) --out models/$(RUN).onnx --quantize int8
	$(PY) -m serve.tag samples/news.txt --model models/$(RUN).onnx -o runs/$(RUN)/news.jsonl
	@echo "tagged samples/news.txt -> runs/$(RUN)/news.jsonl"

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

bench: setup
	$(PY) -m pipeline.bench --run runs/$(RUN) --model models/$(RUN).onnx

clean:
	rm -rf $(VENV) .pytest_cache
