#!/usr/bin/env bash
# Starts the real binary under Xvfb, clicks Generate with xdotool, waits, and takes a screenshot.
# Fails if the window does not appear or the process dies. Usage: window-smoke.sh BINARY OUT.png
set -euo pipefail
binary=$1
shot=$2
runtime=$(mktemp -d)
chmod 700 "$runtime"
app=""
xvfb=""
trap 'kill $app $xvfb 2>/dev/null || true; rm -rf "$runtime"' EXIT
# A display number no X server here uses: neither a lock file in this /tmp nor a listening socket, abstract
# ones included. (Xvfb's own -displayfd only looks at lock files; on a machine where another sandbox shares
# the network namespace but not /tmp, its server's abstract socket @/tmp/.X11-unix/X0 is visible to our
# clients, which try abstract sockets first and so reach the wrong server: "Failed to open connection".)
free_display() {
  local n
  for _ in $(seq 1 100); do
    n=$((100 + RANDOM % 30000))
    [ -e "/tmp/.X$n-lock" ] && continue
    grep -q "/tmp/.X11-unix/X$n\$" /proc/net/unix 2>/dev/null && continue
    echo "$n"
    return
  done
  return 1
}
# Starts Xvfb and the app. Returns 2 (with the logs printed) if the X server cannot be reached, 1 if the app
# failed otherwise.
start() {
  local display
  display=$(free_display) || { echo "smoke: no free display number"; return 1; }
  Xvfb ":$display" -screen 0 1280x800x24 -nolisten tcp >"$runtime/xvfb.log" 2>&1 &
  xvfb=$!
  export DISPLAY=":$display" XDG_RUNTIME_DIR=$runtime HOME=$runtime
  for _ in $(seq 1 50); do
    xdotool getdisplaygeometry >/dev/null 2>&1 && break
    sleep 0.2
  done
  xdotool getdisplaygeometry >/dev/null 2>&1 || { echo "smoke: Xvfb on $DISPLAY takes no connection"; cat "$runtime/xvfb.log"; return 2; }
  "$binary" >"$runtime/app.log" 2>&1 &
  app=$!
  window=""
  for _ in $(seq 1 60); do
    window=$(xdotool search --name '^diffusion-lab$' 2>/dev/null | head -n 1 || true)
    [ -n "$window" ] && return 0
    kill -0 "$app" 2>/dev/null || { echo "smoke: the app died before its window appeared on $DISPLAY"; cat "$runtime/app.log"; echo "Xvfb:"; cat "$runtime/xvfb.log"; grep X11 /proc/net/unix || true
      grep -q "open connection to X server" "$runtime/app.log" && return 2
      return 1; }
    sleep 1
  done
  echo "smoke: no window after 60 s"; cat "$runtime/app.log"
  return 1
}
# A failure to reach the X server is the machine's, not the app's: try a fresh server (three times at most).
started=""
for try in 1 2 3; do
  if start; then started=yes; break; fi
  kill $app $xvfb 2>/dev/null || true
  wait $app $xvfb 2>/dev/null || true
  app=""
  xvfb=""
  grep -q "open connection to X server\|takes no connection" "$runtime/app.log" "$runtime/xvfb.log" 2>/dev/null || exit 1
  echo "smoke: try $try could not reach the X server; starting another"
done
[ -n "$started" ] || exit 1
# Generate sits at (42, 390) of the window's own layout with the default settings (DPM++ 2M: no η row; CFG:
# no method parameters under "Guidance method";
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
  xdotool mousemove --window "$window" 42 390 click 1
  sleep 10
  kill -0 "$app" 2>/dev/null || { echo "smoke: the app died after Generate"; cat "$runtime/app.log"; exit 1; }
  import -window root "$shot"
  cover=$(covered "$shot")
  if awk -v c="$cover" -v t="$threshold" 'BEGIN { exit !(c > t) }'; then drawn=yes; break; fi
done
[ -n "$drawn" ] || { echo "smoke: nothing was drawn after Generate (image area covered $cover, idle $idle, threshold $threshold)"; exit 1; }
echo "smoke: window up, Generate clicked, images drawn (image area covered $cover, idle $idle), still running; screenshot in $shot"
