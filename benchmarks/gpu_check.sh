#!/usr/bin/env bash
# The GPU checks of a lent device machine, in one go (see benchmarks/results/gpu_*.md):
#   decoder tests on CUDA, the 1.5 B-architecture step with CUDA-graph decoding, then with compiled decode
#   pieces (rollout.compile, as the paper presets run), without graphs if EAGER=1, then the GPU memory of
#   the update's log-prob/entropy terms (benchmarks/logits_memory.py).
# Usage: OUT=dir [EAGER=1] bash benchmarks/gpu_check.sh [response_tokens]
set -o pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
RESP=${1:-1024}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/unit/test_decoder.py 2>&1 | tee "$OUT/tests.log"
F="--size qwen2.5-math-1.5b --precision bf16 --mixed-precision --grad-ckpt --threads 8 --prompts 16 --samples 8 --micro-batch 8 --steps 3"
timeout 220 python3 benchmarks/rl_step.py $F --response-tokens "$RESP" --out "$OUT/graphs_$RESP.json" 2>&1 | grep -v "it/s" | tee "$OUT/graphs.log"
timeout 220 python3 benchmarks/rl_step.py $F --response-tokens "$RESP" --compile-decode --out "$OUT/compiled_$RESP.json" 2>&1 | grep -v "it/s" | tee "$OUT/compiled.log"
if [ -n "$EAGER" ]; then  # EAGER=1: also the step without CUDA graphs
  timeout 220 python3 benchmarks/rl_step.py $F --response-tokens "$RESP" --no-cuda-graphs --out "$OUT/eager_$RESP.json" 2>&1 | grep -v "it/s" | tee "$OUT/eager.log"
fi
python3 benchmarks/logits_memory.py --device cuda --tokens 8192 2>&1 | tee "$OUT/logits_memory.log"
python3 benchmarks/logits_memory.py --device cuda --tokens 8192 --dtype bfloat16 2>&1 | tee -a "$OUT/logits_memory.log"
