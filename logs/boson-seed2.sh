#!/bin/bash
# A second seed of the 400-document pair (same reduced schedule)
cd /work/main
while [ ! -f runs/boson-transfer/metrics.json ]; do sleep 15; done
B=../shared/corpora/boson
SCHED="--epochs 6 --epoch-min-steps 250 --seed 2"
.venv/bin/python -m pipeline.train --train data/subsets/boson-train-400.jsonl --dev $B/dev.jsonl --test $B/test.jsonl --out runs/boson400-scratch-s2 $SCHED > logs/boson400-scratch-s2.log 2>&1 &
.venv/bin/python -m pipeline.train --train data/subsets/boson-train-400.jsonl --dev $B/dev.jsonl --test $B/test.jsonl --out runs/boson400-transfer-s2 --init-from runs/default $SCHED > logs/boson400-transfer-s2.log 2>&1 &
wait
