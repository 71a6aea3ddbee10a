#!/usr/bin/env bash
# Guidance in a limited interval of noise levels (Kynkäänniemi et al. 2024) against guidance at every
# level, for the built-in pixel and latent models: `sample` 1000 images (100 per class, DPM++ 2M Karras 20
# steps, the default w, seed 0), then `eval` (Fréchet distance of the classifier's features against the test set,
# and the share judged as the intended class). Usage: benches/guidance_interval.sh [BINARY] [OUT_DIR] [LO,HI]
set -euo pipefail
bin=${1:-target/release/diffusion-lab}
out=${2:-/tmp/guidance-interval}
interval=${3:--3.4,2.5}
mkdir -p "$out"
for model in fashion latent; do
  for range in full interval; do
    dir="$out/$model-$range"
    rm -rf "$dir"
    flags=()
    [[ $range == interval ]] && flags=(--guidance-interval "$interval")
    start=$(date +%s)
    "$bin" sample --model "$model" --n 1000 --all-classes --seed 0 --out-dir "$dir" "${flags[@]}" >/dev/null
    seconds=$(( $(date +%s) - start ))
    echo "== $model $range ${flags[*]} (sample: $seconds s)"
    "$bin" eval "$dir"
  done
done
