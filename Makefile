# Two entry points on a fresh clone: `make run` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN ?= default

.PHONY: setup run run-ensemble run-student own test test-fast bench clean

# One venv for training, serving, the HTTP service and Ray, so `make test` covers every path.
$(VENV)/.installed: requirements.txt requirements-serve.txt requirements-ray.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-serve.txt -r requirements-ray.txt
	touch $@

setup: $(VENV)/.installed

# run_once(MODULE, NAME, FLAGS): train runs/NAME with pipeline.train or pipeline.distill unless
# it is finished; continue it if interrupted. train_once(NAME, FLAGS): with pipeline.train.
run_once = $(if $(wildcard runs/$(2)/metrics.json),@echo "runs/$(2) is already trained (delete it to retrain)",$(PY) -m $(1) --out runs/$(2) $(3) $(if $(wildcard runs/$(2)/checkpoint),--resume,))
train_once = $(call run_once,pipeline.train,$(1),$(2))

# Fetch MSRA, train the default model, export it to ONNX (validated), tag a sample file.
run: setup
	$(PY) -m data.msra
	$(call train_once,$(RUN),)
	$(PY) -m export.to_onnx --run runs/$(RUN) --out models/$(RUN).onnx --quantize int8
	$(PY) -m serve.tag samples/news.txt --model models/$(RUN).onnx -o runs/$(RUN)/news.jsonl
	@echo "tagged samples/news.txt -> runs/$(RUN)/news.jsonl"

# The most accurate option: the default and two members that read the lexicon otherwise (its
# char priors; word embeddings), averaged in one file (docs/results.md, "Ensembles").
run-ensemble: run
	$(call train_once,$(RUN)-priors,--lexicon-char-priors on)
	$(call train_once,$(RUN)-both,--lexicon-features both)
	$(PY) -m export.to_onnx --run runs/$(RUN) --run runs/$(RUN)-priors --run runs/$(RUN)-both \
		--out models/$(RUN)-ensemble.onnx --quantize int8
	$(PY) -m serve.tag samples/news.txt --model models/$(RUN)-ensemble.onnx \
		-o runs/$(RUN)/news-ensemble.jsonl
	@echo "tagged samples/news.txt -> runs/$(RUN)/news-ensemble.jsonl"

# The fast option: a student of the default (character embedding 64, hidden 64, embedding
# dropout 0.3) distilled at temperature 3, the teacher scoring the student's view: the best
# student recipe on MSRA dev (docs/results.md, "The fast student"). Raw text of your own helps
# most: STUDENT_FLAGS="--unlabeled raw.txt".
STUDENT_FLAGS ?=
run-student: run
	$(call run_once,pipeline.distill,$(RUN)-student,--teacher runs/$(RUN) --embedding-dim 64 \
		--hidden-size 64 --embedding-dropout 0.3 --patience 5 --epochs 16 --temperature 3 \
		--teacher-view student $(STUDENT_FLAGS))
	$(PY) -m export.to_onnx --run runs/$(RUN)-student --out models/$(RUN)-student.onnx --quantize int8
	$(PY) -m serve.tag samples/news.txt --model models/$(RUN)-student.onnx -o runs/$(RUN)/news-student.jsonl
	@echo "tagged samples/news.txt -> runs/$(RUN)/news-student.jsonl"

# Your own labelled files, started from the default (--init-from: its embeddings and Bi-LSTM;
# what it gains on a small corpus: docs/results.md, "Own corpora"):
#   make own TRAIN=my/train.jsonl DEV=my/dev.jsonl [NAME=mine]
NAME ?= mine
ifneq ($(filter own,$(MAKECMDGOALS)),)
ifeq ($(and $(TRAIN),$(DEV)),)
$(error make own: give TRAIN=FILE and DEV=FILE (any accepted form))
endif
endif
own: run
	$(call train_once,$(NAME),--train $(TRAIN) --dev $(DEV) --init-from runs/$(RUN))
	$(PY) -m export.to_onnx --run runs/$(NAME) --out models/$(NAME).onnx --quantize int8
	@echo "trained runs/$(NAME), exported models/$(NAME).onnx"

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

bench: setup
	$(PY) -m pipeline.bench --run runs/$(RUN) --model models/$(RUN).onnx

clean:
	rm -rf $(VENV) .pytest_cache
