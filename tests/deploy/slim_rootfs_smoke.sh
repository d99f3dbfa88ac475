#!/usr/bin/env bash
# Opt-in stand-in for `docker build` where no Docker engine runs: builds a
# minimal Debian bookworm root filesystem (debootstrap --variant=minbase, close
# to debian:bookworm-slim), installs exactly deploy/runtime-packages.txt with
# --no-install-recommends, creates the image's user and volume directory the
# way the Dockerfile does, copies the built binary in, and checks that
#   - ldd inside the rootfs resolves every library,
#   - the binary starts as uid 65532 (`--help`; any exit but a loader error),
#   - the baked-in config loads there (`--check-config`),
#   - the tools the legacy-sidecar hooks use (bash, sleep, seq, head, grep) exist.
#
# Needs root, debootstrap and the Debian mirror; takes a few minutes.
#   sudo tests/deploy/slim_rootfs_smoke.sh BINARY [ROOTFS_DIR]
# ctest registers it only with -DDYNAMO_BATCHER_DEPLOY_ROOTFS_TEST=ON.
set -euo pipefail

binary="${1:?usage: $0 BINARY [ROOTFS_DIR]}"
rootfs="${2:-${TMPDIR:-/tmp}/dynamo-batcher-slim-rootfs}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (chroot)"; exit 77; }
command -v debootstrap >/dev/null || { echo "SKIP: debootstrap not installed"; exit 77; }

if [[ ! -x "$rootfs/usr/bin/apt-get" ]]; then
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
fi
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF
mapfile -t pkgs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$repo/deploy/runtime-packages.txt" | awk 'NF')
chroot "$rootfs" apt-get update -qq
DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null

chroot "$rootfs" sh -c 'getent group 65532 >/dev/null || groupadd --gid 65532 dynamo-batcher
  getent passwd 65532 >/dev/null || useradd --no-log-init --uid 65532 --gid 65532 --no-create-home \
    --home-dir /var/lib/dynamo-batcher --shell /usr/sbin/nologin dynamo-batcher 2>/dev/null
  install -d -o 65532 -g 65532 -m 0750 /var/lib/dynamo-batcher'
install -D -m 0755 "$binary" "$rootfs/usr/local/bin/dynamo-batcher"
install -D -m 0644 "$repo/deploy/container-config.yaml" "$rootfs/etc/dynamo-batcher/config.yaml"

failures=0
if chroot "$rootfs" ldd /usr/local/bin/dynamo-batcher | grep 'not found'; then
  echo "FAIL: libraries missing in the slim rootfs (above)"; failures=$((failures + 1))
fi
set +e
out=$(chroot --userspec=65532:65532 "$rootfs" /usr/local/bin/dynamo-batcher --help 2>&1)
rc=$?
set -e
if [[ $rc -eq 127 ]] || grep -q 'error while loading shared libraries' <<<"$out"; then
  echo "FAIL: binary does not start in the slim rootfs: $out"; failures=$((failures + 1))
fi
if [[ $failures -eq 0 ]] && ! out=$(chroot --userspec=65532:65532 "$rootfs" \
    /usr/local/bin/dynamo-batcher --check-config --config /etc/dynamo-batcher/config.yaml 2>&1); then
  echo "FAIL: the image's config does not load as uid 65532: $out"; failures=$((failures + 1))
fi
for tool in bash sleep seq head grep; do
  chroot "$rootfs" sh -c "command -v $tool" >/dev/null ||
    { echo "FAIL: $tool missing (legacy-sidecar hooks use it)"; failures=$((failures + 1)); }
done
[[ $failures -eq 0 ]] || exit 1
echo "OK: $(basename "$binary") runs in a bookworm minbase rootfs with ${#pkgs[@]} runtime packages"
