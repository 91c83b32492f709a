#!/usr/bin/env bash
# GPU latency check, prepared for a machine with an NVIDIA GPU (run from the repository root).
#
#   OUT=runs/gpu bash scripts/gpu_latency.sh
#
# 1. the CUDA-only tests (CUDA-graph backend gives the eager chunks; RL agent on cuda);
# 2. per-tick act() latency on the GPU, eager torch vs the CUDA-graph denoiser vs ONNX Runtime (which
#    picks TensorRT, then CUDA, when onnxruntime-gpu is installed: `make setup-gpu`), DDPM-100 / DDIM-10 /
#    RTI-3 rows plus EBT-2, 200 timed ticks each, ratios against eager torch in the same run;
# 3. the same rows on the CPU of that machine, for the GPU-vs-CPU ratio.
# Writes JSON under $OUT (default runs/gpu). Not run by `make test`.
set -euo pipefail
OUT=${OUT:-runs/gpu}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print(torch.__version__, torch.version.cuda)"
"$PY" -m pytest -q test/policies/test_cuda_graph.py test/rl/test_device.py -rs | tee "$OUT/tests.txt"
EBT=policy_stack/checkpoints/ebt_lowdim_lift
"$PY" -m bench.bench_latency --device cuda --backends torch cuda_graph onnx --ticks 200 --warmup 10 \
    --ebt-policy "$EBT" --ebt-steps 2 --out "$OUT/latency_cuda.json"
"$PY" -m bench.bench_latency --device cuda --backends torch cuda_graph --ticks 200 --warmup 10 \
    --policy policy_stack/checkpoints/diffusion_rgbd_lift --out "$OUT/latency_cuda_rgbd.json"
"$PY" -m bench.bench_latency --device cpu --backends torch onnx --ticks 100 --out "$OUT/latency_cpu.json"
