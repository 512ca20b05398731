#!/usr/bin/env bash
# All the GPU checks in one call, for a lent GPU machine (see ../shared/gpu/README.md).
#
# The GPU machine has torch, transformers, tokenizers, safetensors, scikit-learn, matplotlib,
# tqdm and pytest, but no notebook stack and no checkpoint package; the kit brings the data
# and the checkpoint. From the project folder here:
#
#     cp -r ../shared/gpu .gpu && echo /.gpu/ >> .git/info/exclude
#
# then, as the device tool's command (carry [".gpu"], timeout_s 600):
#
#     bash benchmarks/gpu_check.sh
#
# It unpacks the kit, runs the unit tests on the GPU (what needs the notebook stack skips,
# with its reason), then full-mode fine-tuning and a capped full-mode pre-training, each
# with a time limit, and writes every log to $OUT (or build/gpu). Record what it printed in
# benchmarks/gpu_check.txt with the commit it ran on.
set -uo pipefail
cd "$(dirname "$0")/.."
kit=${GPU_KIT:-.gpu}
out=${OUT:-build/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export BERTEDU_DATA_DIR=/tmp/bertedu-data BERTEDU_QUICK=1
bash "$kit/unpack.sh" /tmp/kit > "$out/unpack.txt" 2>&1 || { cat "$out/unpack.txt"; exit 1; }
export BERTEDU_IMDB_ARCHIVE=/tmp/kit/aclImdb BERTEDU_CHECKPOINT=/tmp/kit/all-MiniLM-L6-v2

{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "| transformers", transformers.__version__, "| bf16", torch.cuda.is_bf16_supported())'
} 2>&1 | tee "$out/machine.txt"

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $out/NAME.txt, print its tail
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  local code=$?
  echo "== $name: exit $code in $((SECONDS - start)) s (limit $limit s)" | tee -a "$out/summary.txt"
  tail -n 12 "$out/$name.txt"
}

# 1. The unit tests on the GPU (no nbval here: the notebooks need the notebook stack).
step unit_tests 200 python3 -m pytest tests -o addopts="" -p no:cacheprovider -q -rs -x
# 2. Full-mode fine-tuning: 24,000 train reviews, all 25,000 test reviews, 512 tokens, bf16.
step finetune_full 200 python3 -m bertedu.cli finetune --full --no-progress --fresh \
  --run-dir /tmp/bertedu-runs/finetune --output /tmp/bertedu-runs/ch5-sentiment
# 3. Full-mode pre-training, capped: the steps/s and the first evaluations.
step pretrain_full 150 python3 -m bertedu.cli pretrain --full --no-progress --fresh --max-steps 2000 \
  --run-dir /tmp/bertedu-runs/pretrain --output /tmp/bertedu-runs/ch4-pretrained
cat "$out/summary.txt"
