#!/bin/bash
# Boson from scratch: 400 documents, then the full training set (reduced schedule, same as the transfer runs)
cd /work/main
B=../shared/corpora/boson
SCHED="--epochs 6 --epoch-min-steps 250"
.venv/bin/python -m pipeline.train --train data/subsets/boson-train-400.jsonl --dev $B/dev.jsonl --test $B/test.jsonl --out runs/boson400-scratch $SCHED > logs/boson400-scratch.log 2>&1
.venv/bin/python -m pipeline.train --train $B/train.jsonl --dev $B/dev.jsonl --test $B/test.jsonl --out runs/boson-scratch $SCHED > logs/boson-scratch.log 2>&1
