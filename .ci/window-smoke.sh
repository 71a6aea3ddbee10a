#!/usr/bin/env bash
# Starts the real binary under Xvfb, clicks Generate with xdotool, waits, and takes a screenshot.
# Fails if the window does not appear or the process dies. Usage: window-smoke.sh BINARY OUT.png
set -euo pipefail
binary=$1
shot=$2
runtime=$(mktemp -d)
chmod 700 "$runtime"
app=""
# Xvfb picks a free display itself and writes its number to the file once it accepts connections.
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$runtime/display" >/dev/null 2>&1 &
xvfb=$!
trap 'kill $app $xvfb 2>/dev/null || true; rm -rf "$runtime"' EXIT
for _ in $(seq 1 50); do
  [ -s "$runtime/display" ] && break
  sleep 0.2
done
[ -s "$runtime/display" ] || { echo "smoke: Xvfb did not start"; exit 1; }
export DISPLAY=":$(head -n 1 "$runtime/display")" XDG_RUNTIME_DIR=$runtime HOME=$runtime
"$binary" >"$runtime/app.log" 2>&1 &
app=$!
window=""
for _ in $(seq 1 60); do
  window=$(xdotool search --name '^diffusion-lab$' 2>/dev/null | head -n 1 || true)
  [ -n "$window" ] && break
  kill -0 "$app" 2>/dev/null || { echo "smoke: the app died before its window appeared"; cat "$runtime/app.log"; exit 1; }
  sleep 1
done
[ -n "$window" ] || { echo "smoke: no window after 60 s"; cat "$runtime/app.log"; exit 1; }
# Generate sits at (42, 367) of the window's own layout with the default settings (DPM++ 2M: no η row;
# measured from a screenshot of a fresh start under this Xvfb); synthetic key
# presses do not reach a winit window without a window manager, clicks do. Generate stays disabled until
# the engine has opened its device and loaded the embedded model, so try again until something is drawn.
#
# "Drawn" means a run's pictures cover the image area: the share of its pixels that are not its background
# (its most common gray, give or take 4 %). The idle window's placeholder line ("Press Generate to watch
# noise turn into images.") covers a few per cent of it; a batch of noisy or finished images most of it.
# (A plain spread of gray levels is not enough: the placeholder alone has a standard deviation of 0.022.)
threshold=0.25
covered() {
  convert "$1" -crop 600x400+450+150 +repage -colorspace Gray -depth 8 -compress none pgm:- | awk '
    { for (i = 1; i <= NF; i++) { n++; if (n == 4) max = $i; else if (n > 4) { count[$i]++; total++ } } }
    END {
      for (v in count) if (count[v] > count[mode]) mode = v
      for (v in count) if (v - mode > 0.04 * max || mode - v > 0.04 * max) off += count[v]
      printf "%.4f\n", total ? off / total : 0
    }'
}
sleep 5
# The check must tell the idle window from a run, here and now: measured on the window before any click.
import -window root "$shot"
idle=$(covered "$shot")
if awk -v c="$idle" -v t="$threshold" 'BEGIN { exit !(c > t) }'; then
  echo "smoke: the idle window already covers $idle of the image area (threshold $threshold): the check means nothing"
  exit 1
fi
drawn=""
for attempt in $(seq 1 8); do
  [ "$attempt" -gt 1 ] && sleep 5
  xdotool mousemove --window "$window" 42 367 click 1
  sleep 10
  kill -0 "$app" 2>/dev/null || { echo "smoke: the app died after Generate"; cat "$runtime/app.log"; exit 1; }
  import -window root "$shot"
  cover=$(covered "$shot")
  if awk -v c="$cover" -v t="$threshold" 'BEGIN { exit !(c > t) }'; then drawn=yes; break; fi
done
[ -n "$drawn" ] || { echo "smoke: nothing was drawn after Generate (image area covered $cover, idle $idle, threshold $threshold)"; exit 1; }
echo "smoke: window up, Generate clicked, images drawn (image area covered $cover, idle $idle), still running; screenshot in $shot"
