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
# Generate sits at (42, 344) of the window's own layout with the default settings (DPM++ 2M: no η row;
# measured from a screenshot of a fresh start under this Xvfb); synthetic key
# presses do not reach a winit window without a window manager, clicks do. Generate stays disabled until
# the engine has opened its device and loaded the embedded model, so try again until something is drawn.
drawn=""
for attempt in $(seq 1 8); do
  sleep 5
  xdotool mousemove --window "$window" 42 344 click 1
  sleep 10
  kill -0 "$app" 2>/dev/null || { echo "smoke: the app died after Generate"; cat "$runtime/app.log"; exit 1; }
  import -window root "$shot"
  # The image area is plain background until a run draws into it.
  spread=$(convert "$shot" -crop 600x400+450+150 -colorspace Gray -format '%[fx:standard_deviation]' info:)
  if awk -v s="$spread" 'BEGIN { exit !(s > 0.02) }'; then drawn=yes; break; fi
done
[ -n "$drawn" ] || { echo "smoke: nothing was drawn after Generate (spread $spread)"; exit 1; }
echo "smoke: window up, Generate clicked, images drawn, still running; screenshot in $shot"
