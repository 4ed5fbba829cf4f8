#!/bin/bash
# Boson with --init-from runs/default: 400 documents and the full training set, in parallel,
# once the default has finished training (same reduced schedule as the scratch runs)
cd /work/main
while [ ! -f runs/default/metrics.json ]; do sleep 20; done
B=../shared/corpora/boson
SCHED="--epochs 6 --epoch-min-steps 250"
.venv/bin/python -m pipeline.train --train data/subsets/boson-train-400.jsonl --dev $B/dev.jsonl --test $B/test.jsonl --out runs/boson400-transfer --init-from runs/default $SCHED > logs/boson400-transfer.log 2>&1 &
.venv/bin/python -m pipeline.train --train $B/train.jsonl --dev $B/dev.jsonl --test $B/test.jsonl --out runs/boson-transfer --init-from runs/default $SCHED > logs/boson-transfer.log 2>&1 &
wait
