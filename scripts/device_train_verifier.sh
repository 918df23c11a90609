#!/usr/bin/env bash
# Train the verifier on a lent GPU machine (the workplace's `device` tool), from packed corpora.
#
# Run there from the repository root, with the carried folders .whl (pytorch-metric-learning's wheel, which that
# machine lacks) and PACKS (written here by `sigpipe verifier pack`); everything after PACKS goes to
# `sigpipe verifier train`. The weights and manifest come back through $OUT (docs/models.md, "Training on a GPU"):
#
#   bash scripts/device_train_verifier.sh work/gpukit/verifier --max-minutes 7 --epochs 200 --doc-views 3 --seed 4 ...
#
# Checked on the CPU with the machine's missing packages hidden (session 47); no GPU has been lent to this project
# yet, so its first run there is the script's first GPU run.
set -euo pipefail
packs=${1:?usage: device_train_verifier.sh PACKS [sigpipe verifier train options]}
shift
out=${OUT:-runs/device}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
data=()
for p in "$packs"/*.npz; do data+=(--data "$p"); done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import sys; sys.argv[0] = 'sigpipe'; from sigpipe.cli import main; main()" \
    verifier train "${data[@]}" --out /tmp/run --device cuda "$@" 2>&1 | tee "$out/train.log"
cp /tmp/run/verifier.pt /tmp/run/verifier.pt.json "$out/"
