#!/usr/bin/env bash
# Train the shipped checkpoints that the 2-core CPU box cannot train in reasonable time, on one
# CUDA GPU, all at once, each inside a wall-clock budget (policy-stack train --time-budget).
#
#   scripts/train_shipped_gpu.sh DATA_DIR OUT_DIR [BUDGET_MINUTES]
#
# DATA_DIR holds the datasets made by `policy-stack collect` (docs/training.md): lift_lowdim,
# can_lowdim, lift_rgbd. Each run writes OUT_DIR/<name>/ (a checkpoint folder) and OUT_DIR/<name>.log.
# Rollout evaluation is off here (the GPU machine need not have the simulator); evaluate afterwards
# with `policy-stack eval` on the same seeds as every other result.
set -u
DATA=${1:?DATA_DIR}; OUT=${2:?OUT_DIR}; BUDGET=${3:-6.5}
mkdir -p "$OUT"
PS="python3 -m policy_stack.cli"
COMMON=(--eval-every 0 --ckpt-every 2000 --steps 200000 --time-budget "$BUDGET" --workers 3 --device auto --seed 0)
RTI=(--set sampler=rti --set rti_start_level=10 --set rti_step_mode=jump)
export OMP_NUM_THREADS=2

run() {  # name, then train arguments
  local name=$1; shift
  $PS train "$@" --out "$OUT/$name" "${COMMON[@]}" --no-progress >"$OUT/$name.log" 2>&1 &
}
run dp_lowdim_can  --policy diffusion --obs lowdim --data "$DATA/can_lowdim"  --batch 256 \
    --set 'down_dims=[64,128,256]' "${RTI[@]}"
run dp_lowdim_lift --policy diffusion --obs lowdim --data "$DATA/lift_lowdim" --batch 256 \
    --set 'down_dims=[48,96,192]' "${RTI[@]}"
run ebt_lowdim_lift --policy ebt --obs lowdim --data "$DATA/lift_lowdim" --batch 256 \
    --set d_model=192 --set n_layers=4
run dp_rgbd_lift --policy diffusion --obs rgbd --cameras agentview robot0_eye_in_hand \
    --data "$DATA/lift_rgbd" --batch 64 --set 'down_dims=[32,64,128]' "${RTI[@]}"
wait
