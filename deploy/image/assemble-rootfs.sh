#!/bin/sh
# Assembles the runtime image's root filesystem in ROOTFS from a Debian
# bookworm system that has the runtime packages installed (the Dockerfile's
# runtime-libs stage):
#   - every shared library `ldd` lists for each BINARY (already in
#     ROOTFS/usr/local/bin), and nothing else: the file and its soname link,
#     laid out the usrmerge way (/lib, /lib64 -> usr/...);
#   - the CA bundle (TLS to DynamoDB and STS), passwd/group with the image's
#     user 65532, nsswitch.conf;
#   - /tmp (1777) and /var/lib/dynamo-batcher (0750, uid 65532).
# Fails when `ldd` cannot resolve a library: the runtime package list
# (deploy/runtime-packages.txt) is then missing a package.
#
# Usage: assemble-rootfs.sh ROOTFS BINARY...
set -eu
rootfs="$1"
shift
[ "$#" -gt 0 ] || { echo "usage: $0 ROOTFS BINARY..." >&2; exit 2; }

# The usr-merged /usr form of a path: /lib/x -> /usr/lib/x.
usr_path() {
  case "$1" in
    /usr/*) echo "$1" ;;
    /lib/* | /lib64/* | /bin/* | /sbin/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}

mkdir -p "$rootfs/usr/lib/x86_64-linux-gnu" "$rootfs/usr/lib64" "$rootfs/etc/ssl/certs" \
  "$rootfs/tmp" "$rootfs/var/lib/dynamo-batcher" "$rootfs/etc/dynamo-batcher"
ln -sfn usr/lib "$rootfs/lib"
ln -sfn usr/lib64 "$rootfs/lib64"

libs=$(mktemp)
for bin in "$@"; do
  out=$(ldd "$bin") || { echo "ldd $bin failed" >&2; exit 1; }
  if echo "$out" | grep -q 'not found'; then
    echo "libraries of $bin missing from the runtime packages:" >&2
    echo "$out" | grep 'not found' >&2
    exit 1
  fi
  # "libx.so.1 => /lib/.../libx.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
  echo "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' >>"$libs"
done
count=0
for lib in $(sort -u "$libs"); do
  real=$(readlink -f "$lib")
  link=$(usr_path "$lib")
  install -D -m 0644 "$real" "$rootfs$real"
  if [ "$link" != "$real" ]; then
    mkdir -p "$(dirname "$rootfs$link")"
    if [ "$(dirname "$link")" = "$(dirname "$real")" ]; then
      ln -sfn "$(basename "$real")" "$rootfs$link"
    else
      ln -sfn "$real" "$rootfs$link"
    fi
  fi
  count=$((count + 1))
done
rm -f "$libs"
# The dynamic loader must be executable.
for ld in "$rootfs"/usr/lib/x86_64-linux-gnu/ld-linux-*.so.*; do
  [ -e "$ld" ] && chmod 0755 "$(readlink -f "$ld")"
done

cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/usr/sbin/nologin
dynamo-batcher:x:65532:65532:dynamo-batcher:/var/lib/dynamo-batcher:/usr/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
dynamo-batcher:x:65532:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
chmod 1777 "$rootfs/tmp"
chown 65532:65532 "$rootfs/var/lib/dynamo-batcher"
chmod 0750 "$rootfs/var/lib/dynamo-batcher"
echo "assembled $rootfs: $# binaries, $count shared libraries"
