#!/usr/bin/env bash
# Training recipes side by side in the 2-D lab (issue 36, part 3): each objective with its usual weighting,
# trained on the same preset's points from the same seed, then measured the same way (lab2d::recipes):
# the straightness of their DDIM η = 0 paths in y = x/(α+σ) over flow time t, and their sliced W₂ to the data at
# 1, 2, 4, 8 and 20 steps with each recipe's usual spacing and the common one, beside the exact denoiser of
# the data's mixture and the floor (fresh draws of the data).
#
#   benches/lab2d_recipes.sh [OUT] > lab2d-recipes.txt      (the tables, and OUT/PRESET.png for each preset)
#   STEPS=2000 PRESETS="moons ring" RECIPES="eps v:min-snr:5 flow:logit-normal:0,1" benches/lab2d_recipes.sh
set -euo pipefail
OUT=${1:-runs/lab2d-recipes}
STEPS=${STEPS:-2000}
BIN=${BIN:-target/release/diffusion-lab}
read -ra PRESETS <<< "${PRESETS:-two-gaussians eight-gaussians moons}"
read -ra RECIPES <<< "${RECIPES:-eps x0 v flow}"
mkdir -p "$OUT"
flags=()
for recipe in "${RECIPES[@]}"; do flags+=(--recipe "$recipe"); done
for preset in "${PRESETS[@]}"; do
  echo "## $preset, $STEPS steps each"
  echo
  echo '```'
  "$BIN" lab2d --preset "$preset" --steps "$STEPS" "${flags[@]}" --figure "$OUT/$preset.png"
  echo '```'
  echo
done
