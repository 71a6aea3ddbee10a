#!/usr/bin/env bash
# Training in the window vs `diffusion-lab train`: the same run (Fashion-MNIST, the Train view's default
# Small UNet [32, 64], batch 64, learning rate 1e-3, 2000 steps planned) for STEPS steps in the real window
# under Xvfb (started and paused by xdotool clicks), then for STEPS steps from the command line. Prints the
# mean images/s of each (steps 2.. of the loss logs: the first builds the graph) and the window's UI frame
# times while it trained, and leaves a screenshot of the Train view in OUT.png.
#
#   benches/train_in_window.sh [STEPS] [OUT.png]        (needs xvfb, xdotool, imagemagick, dataset-fashion-mnist)
#
# The clicks are at positions measured from a screenshot of this layout at 1280x800 (Train view tab at
# (150, 12); Start and Pause training at (53, 493) with Fashion-MNIST's ten classes listed above them).
set -euo pipefail
STEPS=${1:-110}
SHOT=${2:-/tmp/train-view.png}
BIN=${BIN:-target/release/diffusion-lab}
BIN=$(realpath "$BIN")
work=$(mktemp -d)
chmod 700 "$work"
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$work/display" >/dev/null 2>&1 &
xvfb=$!
app=""
trap 'kill $app $xvfb 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do [ -s "$work/display" ] && break; sleep 0.2; done
export DISPLAY=":$(head -n 1 "$work/display")" XDG_RUNTIME_DIR=$work HOME=$work
"$BIN" >"$work/app.log" 2>&1 &
app=$!
window=""
for _ in $(seq 1 60); do
  window=$(xdotool search --name '^diffusion-lab$' 2>/dev/null | head -n 1 || true)
  [ -n "$window" ] && break
  sleep 1
done
[ -n "$window" ] || { echo "no window"; exit 1; }
sleep 5
xdotool mousemove --window "$window" 150 12 click 1
sleep 10 # the Train view loads Fashion-MNIST
xdotool mousemove --window "$window" 53 493 click 1
xdotool mousemove --window "$window" 900 20
log="$work/diffusion-lab/runs/my-model/loss.csv"
for _ in $(seq 1 3600); do
  [ -f "$log" ] && [ "$(tail -n 1 "$log" | cut -d, -f1)" -ge "$STEPS" ] 2>/dev/null && break
  sleep 1
done
sleep 2
import -window root "$SHOT"
xdotool mousemove --window "$window" 56 493 click 1
sleep 3
grep "training paused" "$work/app.log" || { echo "the window did not report its pause"; cat "$work/app.log"; exit 1; }
"$BIN" train --channels 32,64 --batch-size 64 --learning-rate 0.001 --steps 2000 --max-steps-now "$STEPS" \
  --checkpoint-every 100 --preview-every 100 --out "$work/cli" 2>/dev/null
mean() { awk -F, -v n="$2" 'NR > 2 && $1 <= n { s += $4; k++ } END { printf "%.2f", s / k }' "$1"; }
window_rate=$(mean "$log" "$STEPS")
cli_rate=$(mean "$work/cli/loss.csv" "$STEPS")
echo "images/s over steps 2..$STEPS: window $window_rate, train $cli_rate, window / train = $(echo "scale=3; $window_rate / $cli_rate" | bc)"
