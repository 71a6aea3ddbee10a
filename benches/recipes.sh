#!/usr/bin/env bash
# Training recipes side by side on Fashion-MNIST (issue 36): each objective with its usual weighting (and
# ε with min-SNR-5), the same UNet (--channels 16,32,64), data order, seed and number of training images;
# the quality meter every QUALITY_EVERY steps (quality.csv in each run folder); then, for each trained
# model, FD and class accuracy at n = N with DPM++ 2M (Karras spacing) at 1, 2, 4, 8 and 20 steps.
#
#   benches/recipes.sh [OUT] > recipes.md      (needs dataset-fashion-mnist; resumable: rerun to continue)
#   STEPS=3000 N=1000 RECIPES="eps:plain;flow:uniform-t" benches/recipes.sh runs/recipes
set -euo pipefail
OUT=${1:-runs/recipes}
STEPS=${STEPS:-3000}
N=${N:-1000}
QUALITY_EVERY=${QUALITY_EVERY:-500}
BIN=${BIN:-target/release/diffusion-lab}
IFS=";" read -ra RECIPES <<< "${RECIPES:-eps:plain;x0:plain;v:plain;flow:uniform-t;eps:min-snr:5}"
mkdir -p "$OUT"
score() { # dir steps -> "| recipe | steps | FD | accuracy |" row
  local samples="$1/samples-$2"
  if [ ! -f "$samples.score" ]; then
    rm -rf "$samples"
    "$BIN" sample --model "$1/checkpoint.dlab" --n "$N" --all-classes --sampler dpmpp-2m --spacing karras \
      --sampling-steps "$2" --seed 0 --device cpu --out-dir "$samples" 2>/dev/null
    "$BIN" eval "$samples" 2>/dev/null | grep '^samples:' > "$samples.score"
    rm -rf "$samples"
  fi
}
for recipe in "${RECIPES[@]}"; do
  objective=${recipe%%:*}
  weighting=${recipe#*:}
  dir="$OUT/$objective-${weighting//[:,]/_}"
  resume=""
  [ -f "$dir/checkpoint.dlab" ] && resume="--resume"
  "$BIN" train --out "$dir" $resume --channels 16,32,64 --steps "$STEPS" --objective "$objective" \
    --weighting "$weighting" --quality-every "$QUALITY_EVERY" --quality-samples 250 --checkpoint-every 250 \
    --preview-every "$STEPS" --seed 0 >>"$dir.train.log" 2>&1
  for steps in ${SAMPLING_STEPS:-1 2 4 8 20}; do score "$dir" "$steps"; done
done
echo "| recipe | sampling steps | FD (n = $N) | class accuracy |"
echo "| --- | --- | --- | --- |"
for recipe in "${RECIPES[@]}"; do
  objective=${recipe%%:*}
  weighting=${recipe#*:}
  dir="$OUT/$objective-${weighting//[:,]/_}"
  for steps in ${SAMPLING_STEPS:-1 2 4 8 20}; do
    line=$(cat "$dir/samples-$steps.score")
    fd=$(echo "$line" | sed -E 's/.*FD = *([0-9.]+).*/\1/')
    acc=$(echo "$line" | sed -E 's/.*class accuracy = ([0-9.]+ %).*/\1/')
    echo "| $objective · $weighting | $steps | $fd | $acc |"
  done
done
