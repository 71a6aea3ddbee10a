#!/usr/bin/env bash
# The Debian package, as a user gets it: build it with cargo-deb, check its file list (a dropped file fails
# here), install it with apt, and use what was installed: `sample` from /usr/bin, the man page, the desktop
# entry and AppStream validators, and the window under Xvfb (.ci/window-smoke.sh on the installed binary).
# Usage: check-deb.sh [PROFILE]  (default: release, the binary the tests built; plain `cargo deb` uses
# `dist`, whose build takes far longer: see README, "Install").
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
target=${CARGO_TARGET_DIR:-target}
id=io.github.diffusionlab.DiffusionLab

rm -f "$target"/debian/diffusion-lab_*.deb
cargo deb --profile "$profile"
deb=$(ls "$target"/debian/diffusion-lab_*.deb)
echo "check-deb: $deb ($(du -h "$deb" | cut -f1))"

# Every file the package must install; anything missing fails.
expected=(
  ./usr/bin/diffusion-lab
  "./usr/share/applications/$id.desktop"
  "./usr/share/metainfo/$id.metainfo.xml"
  ./usr/share/man/man1/diffusion-lab.1.gz
  ./usr/share/man/man1/diffusion-lab-sample.1.gz
  ./usr/share/man/man1/diffusion-lab-train.1.gz
  ./usr/share/bash-completion/completions/diffusion-lab
  ./usr/share/zsh/vendor-completions/_diffusion-lab
  ./usr/share/fish/vendor_completions.d/diffusion-lab.fish
  ./usr/share/doc/diffusion-lab/copyright
)
for size in 16 24 32 48 64 128 256 512; do
  expected+=("./usr/share/icons/hicolor/${size}x${size}/apps/$id.png")
done
listing=$(dpkg-deb --contents "$deb" | awk '{print $NF}')
missing=0
for file in "${expected[@]}"; do
  grep -qxF "$file" <<<"$listing" || { echo "check-deb: the package lacks $file"; missing=1; }
done
[ "$missing" = 0 ] || { echo "check-deb: the package holds:"; echo "$listing"; exit 1; }
# The binary is stripped (cargo-deb strips it; the dist profile already did).
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/diffusion-lab >"${TMPDIR:-/tmp}/diffusion-lab-packaged"
file "${TMPDIR:-/tmp}/diffusion-lab-packaged" | grep -q ", stripped" || { echo "check-deb: the binary is not stripped"; exit 1; }
rm -f "${TMPDIR:-/tmp}/diffusion-lab-packaged"
echo "check-deb: all ${#expected[@]} expected files are in the package"

DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall --no-install-recommends "$(realpath "$deb")" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/diffusion-lab sample --n 4 --grid "$work/g.png" --device cpu
file "$work/g.png" | grep -q "PNG image data" || { echo "check-deb: the installed sample wrote no PNG"; exit 1; }
MANPAGER=cat man diffusion-lab | grep -q "Without a subcommand, diffusion-lab opens its window" \
  || { echo "check-deb: man diffusion-lab does not show the page"; exit 1; }
MANPAGER=cat man diffusion-lab-sample | grep -q -- "--guidance" || { echo "check-deb: man diffusion-lab-sample lacks --guidance"; exit 1; }
desktop-file-validate "/usr/share/applications/$id.desktop"
appstreamcli validate --no-net "/usr/share/metainfo/$id.metainfo.xml"
bash .ci/window-smoke.sh /usr/bin/diffusion-lab "$work/installed-window.png"
echo "check-deb: installed, sampled, man page shown, desktop entry and metainfo valid, window drawn"
