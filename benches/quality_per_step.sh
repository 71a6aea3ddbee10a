#!/usr/bin/env bash
# The quality-per-step table of assets/models/README.md: for each sampler, `sample` n images of every class
# (guidance 2, the same seed for every sampler, so the same x_T) at 10, 20 and 50 network evaluations, then
# `eval` them (Fréchet distance of the classifier's features against the test set, and class accuracy).
#
#   benches/quality_per_step.sh [N] [MODEL] > table.md      (N = 300 by default; needs dataset-fashion-mnist)
#   N=1000 EVALUATIONS=20 CASES="dpmpp-2m karras" benches/quality_per_step.sh       (one row; CASES split by ';')
#
# Heun takes two evaluations per step (but the last, and steps it leaves uncorrected): 5, 10 and 25 steps.
set -euo pipefail
N=${N:-${1:-300}}
MODEL=${2:-fashion}
BIN=${BIN:-target/release/diffusion-lab}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "| sampler | spacing | steps | evaluations | FD | class accuracy | seconds |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
run() { # sampler spacing steps
  local dir="$WORK/$1-$2-$3"
  local start=$(date +%s.%N)
  "$BIN" sample --model "$MODEL" --n "$N" --all-classes --sampler "$1" --spacing "$2" --sampling-steps "$3" \
    --seed 0 --device cpu --out-dir "$dir" 2>"$dir.log"
  local evaluations=$(sed -nE 's/.*\(([0-9]+) network evaluations.*/\1/p' "$dir.log")
  local seconds=$(echo "$(date +%s.%N) - $start" | bc)
  local line=$("$BIN" eval "$dir" 2>/dev/null | grep '^samples:')
  local fd=$(echo "$line" | sed -E 's/.*FD = *([0-9.]+).*/\1/')
  local acc=$(echo "$line" | sed -E 's/.*class accuracy = ([0-9.]+ %).*/\1/')
  printf '| %s | %s | %s | %s | %s | %s | %.0f |\n' "$1" "$2" "$3" "$evaluations" "$fd" "$acc" "$seconds"
  rm -rf "$dir"
}
IFS=";" read -ra CASE_LIST <<< "${CASES:-ddim trailing;euler-a trailing;dpmpp-2m trailing;dpmpp-2m karras;dpmpp-2m-sde trailing;heun karras}"
for case in "${CASE_LIST[@]}"; do
  set -- $case
  for evaluations in ${EVALUATIONS:-10 20 50}; do
    steps=$evaluations
    [ "$1" = heun ] && steps=$(( evaluations / 2 ))
    run "$1" "$2" "$steps"
  done
done
