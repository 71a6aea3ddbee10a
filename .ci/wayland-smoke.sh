#!/usr/bin/env bash
# The window as a native Wayland client: starts a headless Weston compositor, runs the binary with only
# WAYLAND_DISPLAY set (no X server), and checks from the client's protocol log (WAYLAND_DEBUG) that it made
# an xdg_toplevel with the app's id, drew into it (surface commits), and kept running.
# Usage: wayland-smoke.sh BINARY
set -euo pipefail
binary=$1
runtime=$(mktemp -d)
chmod 700 "$runtime"
compositor=""
trap 'kill $compositor 2>/dev/null || true; rm -rf "$runtime"' EXIT
export XDG_RUNTIME_DIR=$runtime HOME=$runtime
unset DISPLAY
weston --backend=headless-backend.so --socket=wayland-smoke --width=1280 --height=800 >"$runtime/weston.log" 2>&1 &
compositor=$!
for _ in $(seq 1 50); do
  [ -S "$runtime/wayland-smoke" ] && break
  sleep 0.2
done
[ -S "$runtime/wayland-smoke" ] || { echo "wayland-smoke: Weston did not start"; cat "$runtime/weston.log"; exit 1; }
status=0
WAYLAND_DISPLAY=wayland-smoke WAYLAND_DEBUG=client timeout 30 "$binary" >"$runtime/app.log" 2>&1 || status=$?
# timeout's 124 means the window was still running after 30 s, which is what we want.
[ "$status" = 124 ] || { echo "wayland-smoke: the app exited ($status) within 30 s"; tail -30 "$runtime/app.log"; exit 1; }
grep -q 'xdg_toplevel@[0-9]*\.set_app_id("io.github.diffusionlab.DiffusionLab")' "$runtime/app.log" \
  || { echo "wayland-smoke: no xdg_toplevel with the app id"; tail -30 "$runtime/app.log"; exit 1; }
commits=$(grep -c 'wl_surface@[0-9]*\.commit()' "$runtime/app.log" || true)
[ "$commits" -ge 3 ] || { echo "wayland-smoke: only $commits surface commits"; tail -30 "$runtime/app.log"; exit 1; }
echo "wayland-smoke: a native Wayland window (xdg_toplevel, app id set), $commits surface commits in 30 s, still running"
