#!/bin/bash
# Evaluate the baselines in blocks of 5 seeds per row, each row in its own loop, until a deadline
# (a block is started only before the deadline; every finished block is its own JSON).
# usage: scripts/kite_baselines_eval_blocks.sh DEADLINE_HHMM ROW [ROW ...]   (ROW = task/split/mode)
cd "$(dirname "$0")/.."
DEADLINE=$1
shift
mkdir -p runs/bench/kitedp
ROWS="$@"
for row in $ROWS; do
  (
  name=$(echo $row | tr / _)
  for block in 0 1 2 3 4 5 6 7 8 9; do
    now=$(date -u +%H%M)
    if [ "$now" -ge "$DEADLINE" ]; then echo "$row: deadline before block $block"; break; fi
    seed=$((100000 + 5 * block))
    echo "$row block $block seed $seed start $(date -u +%T)"
    OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_kite --policy kite_multi_cube --rows $row:5 --seed $seed --workers 1 \
      --dp-policy ${DP_POLICY:-runs/kitedp/dp_lang} --skill-policy ${SKILL_POLICY:-runs/kitedp/kite_skill} \
      --out runs/bench/kitedp/${name}_s${seed}.json > runs/bench/kitedp/${name}_s${seed}.log 2>&1
    echo "$row block $block done $(date -u +%T) rc $?"
  done
  ) &
done
wait
