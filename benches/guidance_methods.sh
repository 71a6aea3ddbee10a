#!/usr/bin/env bash
# Guidance methods side by side on the built-in latent model (issue 37): for each method and scale, `sample`
# 500 images (50 per class, the default sampler DPM++ 2M Karras 20 steps, seed 0, each method's default
# parameters), then `eval` (Fréchet distance of the judge's features against the test set, the share judged
# as the intended class, and the real-data floor at the same n). Writes one CSV row per run and the plot.
# Usage: benches/guidance_methods.sh [BINARY] [OUT_DIR] [CSV]
set -euo pipefail
bin=${1:-target/release/diffusion-lab}
out=${2:-/tmp/guidance-methods}
csv=${3:-assets/models/training/guidance/guidance-methods.csv}
n=${N:-500}
mkdir -p "$out" "$(dirname "$csv")"
declare -A scales=(
  [cfg]="1 1.5 2 3 4 6"
  [rescale]="1.5 2 3 4.5 7.5 10"
  [apg]="1.5 2 3 4.5 7.5 10"
  [cfgpp]="0 0.2 0.4 0.6 0.8 1"
  [auto]="1.5 2 2.25 3 4 6"
)
echo "method,scale,n,fd,accuracy,real_fd,real_accuracy,sample_seconds" > "$csv"
for method in cfg rescale apg cfgpp auto; do
  for scale in ${scales[$method]}; do
    dir="$out/$method-$scale"
    rm -rf "$dir"
    start=$(date +%s)
    "$bin" sample --model latent --n "$n" --all-classes --seed 0 --device cpu --out-dir "$dir" \
      --guidance-method "$method" --guidance "$scale" >/dev/null 2>&1
    seconds=$(( $(date +%s) - start ))
    report=$("$bin" eval "$dir" 2>/dev/null)
    # "samples:   n =   500  FD =    7.123  class accuracy = 93.4 %" and the "real data:" line below it.
    row() { echo "$report" | grep "^$1" | sed -E 's/.*FD = *([0-9.]+) *class accuracy = *([0-9.]+) %.*/\1,\2/'; }
    echo "$method,$scale,$n,$(row samples),$(row 'real data'),$seconds" | tee -a "$csv"
    rm -rf "$dir"
  done
done
python3 "$(dirname "$0")/plot_guidance_methods.py" "$csv" assets/readme/guidance-methods.png
