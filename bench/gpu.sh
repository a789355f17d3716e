#!/usr/bin/env bash
# GPU check, ready for a lent H200 (or any CUDA GPU): pre-trains GPT-2 124M on tinyworld with bf16
# autocast and torch.compile for a few minutes, then prints tokens/s and MFU (model FLOPs
# utilisation against the GPU's dense bf16 peak).
#
#   bash bench/gpu.sh                 # 3 minutes of training
#   MINUTES=10 bash bench/gpu.sh
#
# Needs only what `pip install -e .` needs; on a machine whose Python already has torch,
# transformers-free PYTHONPATH use works too (as here).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORK=${WORK:-/tmp/llmlab-gpu}
MINUTES=${MINUTES:-3}
PY=${PY:-python3}
# Overridable for a dry run on a CPU: PRESET=tiny BATCH=4 SEQ=128 GLOBAL=512 TOKENS=1M MINUTES=0.2 PRECISION=fp32 COMPILE=--no-compile
PRESET=${PRESET:-gpt2}
BATCH=${BATCH:-32}
SEQ=${SEQ:-1024}
GLOBAL=${GLOBAL:-524288}
TOKENS=${TOKENS:-30M}
PRECISION=${PRECISION:-bf16}
COMPILE=${COMPILE:---compile}
llmlab() { "$PY" -m llmlab.cli.main "$@"; }

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

[ -f "$WORK/tw/manifest.json" ] || llmlab data tinyworld --out "$WORK/tw" --tokens "$TOKENS" --no-progress --json
[ -f "$WORK/shards/manifest.json" ] || llmlab data prepare --input "$WORK/tw" --train-tokenizer --vocab-size 8192 \
    --out "$WORK/shards" --no-progress --json
rm -rf "$WORK/run"
# GPT-2 124M: 12 layers, d_model 768, 12 heads, context 1024; the vocabulary padded to 50304
# (a multiple of 128) as nanoGPT does, so the head's matmul uses the tensor cores fully.
echo '{"vocab_size": 50304}' > "$WORK/model.json"
llmlab pretrain --data "$WORK/shards" --preset "$PRESET" --model-config "$WORK/model.json" \
    --batch-size "$BATCH" --seq-len "$SEQ" --global-batch-tokens "$GLOBAL" --precision "$PRECISION" $COMPILE \
    --lr 6e-4 --warmup-steps 20 --minutes "$MINUTES" --eval-every 50 --eval-windows 32 \
    --save-every 1000000 --samples 1 --no-progress --out "$WORK/run" --json | tee "$WORK/result.json"

"$PY" - "$WORK/run/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
steady = rows[len(rows) // 3:] or rows  # skip compilation and warm-up
tps = statistics.median(r["tokens_per_s"] for r in steady)
mfu = [r["mfu"] for r in steady if "mfu" in r]
print(json.dumps({"steps": len(rows), "tokens_per_s": round(tps), "mfu": round(statistics.median(mfu), 4) if mfu else None,
                  "final_loss": rows[-1]["loss"]}))
PY
