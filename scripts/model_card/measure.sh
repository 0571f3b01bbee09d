#!/usr/bin/env bash
# FID rows of diffnotes/pretrained/MODEL_CARD.md, most important first; each row's figures land in
# runs/eval/fid_*.json. Run from the repository root with DIFFNOTES_CIFAR10 set:
#   DIFFNOTES_CIFAR10=<stand-in>/cifar-10-batches-py bash scripts/model_card/measure.sh
# then: python scripts/model_card/card.py (prints the table rows). About 50 minutes on a 2-core CPU.
set -u
cd "$(dirname "$0")/../.."
mkdir -p runs/eval
PY=${PY:-.venv/bin/python}
CK=${CK:-cifar10-cpu}
N=${N:-1000}
log() { echo "[$(date +%T)] $*"; }
$PY scripts/model_card/make_refs.py
log "floor: 1000 real test images"
/usr/bin/time -f "%e s" $PY -m diffnotes fid --samples runs/eval/real1k_test.npz --ref runs/eval/ref2k_train.npz --json runs/eval/fid_real1k.json --method eigh --no-progress
row() { name=$1; shift; log "row $name"; /usr/bin/time -f "%e s" $PY -m diffnotes fid --ckpt $CK --n $N --batch-size 250 --ref runs/eval/ref2k_train.npz --json runs/eval/fid_$name.json --out runs/eval/s_$name --method eigh --no-progress "$@"; }
row ddim10 --sampler ddim --steps 10
row ddim50 --sampler ddim --steps 50
row ddim20 --sampler ddim --steps 20
row ddim100 --sampler ddim --steps 100
row heun50 --sampler ode_heun --steps 50
row ddpm100 --sampler ddpm --steps 100
row ddim50_cond --sampler ddim --steps 50 --label cycle
log done
# a second point on the FID-against-training curve: the unconditional warm start (824 576 images)
CK=runs/cifar10-cpu row warmstart_ddim50 --sampler ddim --steps 50
log done2
