#!/usr/bin/env bash
# The schedule sweep of assets/models/README.md: for each schedule (kind, T, β_end), the terminal signal
# ᾱ_T (and log-SNR λ_T) next to `eval`'s Fréchet distance and class accuracy of n samples of every class
# from the built-in pixel model, all with the same seed and sampler (the window's default: DPM++ 2M,
# Karras spacing, 20 steps; guidance 2). Where quality starts to fall sets the window's warning threshold.
#
#   benches/schedule_sweep.sh [N] > table.md          (N = 300 by default, 29 rows, about 30 min; needs dataset-fashion-mnist)
# The rows are listed in the order of the table in assets/models/README.md (by ᾱ_T).
#   CASES="sigmoid 300 0.02" benches/schedule_sweep.sh   (rows split by ';': kind T beta_end, "-" = the kind's default)
set -euo pipefail
N=${N:-${1:-300}}
BIN=${BIN:-target/release/diffusion-lab}
SAMPLER=${SAMPLER:-}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "| kind | T | β_end | ᾱ_T | sqrt ᾱ_T | λ_T | FD | class accuracy | seconds |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
run() { # kind T beta_end
  local flags=(--kind "$1" --timesteps "$2")
  [ "$3" != - ] && flags+=(--beta-end "$3")
  local dir="$WORK/$1-$2-$3"
  local last=$("$BIN" schedule "${flags[@]}" | tail -1)
  local alpha_bar=$(echo "$last" | cut -d, -f4)
  local log_snr=$(echo "$last" | cut -d, -f11)
  local start=$(date +%s.%N)
  "$BIN" sample --model fashion --n "$N" --all-classes $SAMPLER "${flags[@]}" --seed 0 --device cpu --out-dir "$dir" 2>"$dir.log"
  local seconds=$(echo "$(date +%s.%N) - $start" | bc)
  local line=$("$BIN" eval "$dir" 2>/dev/null | grep '^samples:')
  local fd=$(echo "$line" | sed -E 's/.*FD = *([0-9.]+).*/\1/')
  local acc=$(echo "$line" | sed -E 's/.*class accuracy = ([0-9.]+ %).*/\1/')
  printf '| %s | %s | %s | %.3g | %.3f | %.2f | %s | %s | %.0f |\n' "$1" "$2" "$3" "$alpha_bar" \
    "$(echo "sqrt($alpha_bar)" | bc -l)" "$log_snr" "$fd" "$acc" "$seconds"
  rm -rf "$dir"
}
DEFAULT_CASES="cosine 1000 -;cosine 100 -;cosine 50 -;sigmoid 1000 -;linear 1000 -;sigmoid 300 0.04;sigmoid 600 -;quadratic 1000 -;linear 1000 0.01;linear 500 -;sigmoid 480 -;linear 1000 0.0095;linear 475 -;linear 450 -;sigmoid 450 -;linear 1000 0.008;sigmoid 400 -;linear 400 -;quadratic 700 -;linear 1000 0.007;linear 350 -;quadratic 600 -;sigmoid 300 -;linear 300 -;quadratic 500 -;linear 1000 0.005;linear 200 -;quadratic 300 -;linear 100 -"
IFS=";" read -ra CASE_LIST <<< "${CASES:-$DEFAULT_CASES}"
for case in "${CASE_LIST[@]}"; do
  run $case
done
