#!/usr/bin/env bash
# Checks that the runtime image installs every Debian package the built
# dynamo-batcher binary needs, and that deploy/runtime-packages.txt and the
# runtime-libs stage of deploy/Dockerfile (whose libraries the final scratch
# stage copies) agree.
#
# Usage:
#   check_runtime_packages.sh [--repo DIR] BINARY   # full check (ldd + dpkg -S)
#   check_runtime_packages.sh [--repo DIR] --lists-only
#                                                   # only list vs Dockerfile
#
# For every library `ldd BINARY` resolves, `dpkg -S` names the package that
# owns it. That package is covered when it is
#   - listed (runtime-packages.txt == Dockerfile runtime-libs apt-get line), or
#   - one debian:bookworm-slim already has (libc6, libstdc++6, libgcc-s1, ...), or
#   - for a library the binary does not link directly (not DT_NEEDED): in the
#     Depends/Pre-Depends closure of the listed packages, which apt installs
#     with them (e.g. libgrpc29, libre2-9, libc-ares2 under libgrpc++1.51).
# A package providing a DT_NEEDED library must be listed itself (or be
# essential): the image must not rely on another package happening to drag
# in a library the binary links against.
#
# Exit codes: 0 ok, 1 a check failed, 2 usage error, 77 cannot check here
# (not a Debian bookworm host, or no ldd/dpkg) - ctest reports 77 as skipped.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
binary=""
lists_only=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repo) repo="$2"; shift 2 ;;
    --lists-only) lists_only=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) binary="$1"; shift ;;
  esac
done
if [[ $lists_only -eq 0 && -z "$binary" ]]; then
  echo "usage: $0 [--repo DIR] BINARY | --lists-only" >&2
  exit 2
fi

pkg_file="$repo/deploy/runtime-packages.txt"
dockerfile="$repo/deploy/Dockerfile"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# Packages every debian:bookworm-slim image has (Priority: required, or pulled
# in by apt/dpkg there). Libraries from these never need listing.
base_packages=(
  libc6 libstdc++6 libgcc-s1 gcc-12-base zlib1g libzstd1 liblzma5 libbz2-1.0
  libcrypt1 libselinux1 libpcre2-8-0 libacl1 libattr1 libmd0 libtinfo6
  libgnutls30 libgmp10 libhogweed6 libnettle8 libidn2-0 libunistring2
  libtasn1-6 libp11-kit0 libffi8 libgcrypt20 libgpg-error0 libsystemd0
  liblz4-1 libcap2 libseccomp2 libxxhash0 libudev1 libuuid1 libblkid1
  libmount1 libsmartcols1 libaudit1 libcap-ng0 libpam0g libdb5.3
)

# --- runtime-packages.txt ----------------------------------------------------
[[ -f "$pkg_file" ]] || { echo "FAIL: missing $pkg_file" >&2; exit 1; }
[[ -f "$dockerfile" ]] || { echo "FAIL: missing $dockerfile" >&2; exit 1; }
mapfile -t listed < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$pkg_file" | awk 'NF' | sort -u)
[[ ${#listed[@]} -gt 0 ]] || fail "$pkg_file lists no package"

# --- the Dockerfile's runtime-libs stage apt-get install packages ---------------
# The runtime-libs stage (FROM ... AS runtime-libs up to the next FROM). Comment lines are dropped
# (Docker ignores them inside continuations too), continuations are joined,
# and the words after `apt-get install` (minus options) are collected.
dockerfile_packages() {
  awk '
    /^[[:space:]]*#/ { next }
    /^[[:space:]]*[Ff][Rr][Oo][Mm][[:space:]]/ {
      in_stage = tolower($0) ~ /[[:space:]]as[[:space:]]+runtime-libs[[:space:]]*$/
    }
    in_stage { print }
  ' "$dockerfile" |
  sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' |
  grep -E '^[[:space:]]*RUN[[:space:]]' |
  sed -e 's/&&/\n/g' -e 's/;/\n/g' -e 's/||/\n/g' |
  awk '
    {
      for (i = 1; i <= NF; i++) {
        if (($i == "apt-get" || $i == "apt") && $(i + 1) == "install") {
          for (j = i + 2; j <= NF; j++) {
            w = $j
            if (w ~ /^-/ || w == "\\") continue
            sub(/=.*/, "", w)      # pkg=version pins
            print w
          }
          break
        }
      }
    }'
}
mapfile -t docker_pkgs < <(dockerfile_packages | sort -u)
[[ ${#docker_pkgs[@]} -gt 0 ]] ||
  fail "no 'apt-get install' found in the runtime-libs stage of $dockerfile"

only_in_list=$(comm -23 <(printf '%s\n' "${listed[@]}") <(printf '%s\n' "${docker_pkgs[@]}"))
only_in_docker=$(comm -13 <(printf '%s\n' "${listed[@]}") <(printf '%s\n' "${docker_pkgs[@]}"))
[[ -z "$only_in_list" ]] ||
  fail "in deploy/runtime-packages.txt but not in the Dockerfile's runtime-libs apt-get install: $(echo $only_in_list)"
[[ -z "$only_in_docker" ]] ||
  fail "in the Dockerfile's runtime-libs apt-get install but not in deploy/runtime-packages.txt: $(echo $only_in_docker)"

if [[ $lists_only -eq 1 ]]; then
  if [[ $failures -gt 0 ]]; then exit 1; fi
  echo "OK: deploy/runtime-packages.txt and the Dockerfile runtime-libs stage agree (${#listed[@]} packages)"
  exit 0
fi

# --- ldd + dpkg -S -------------------------------------------------------------
[[ -f "$binary" && -x "$binary" ]] || { echo "FAIL: not an executable: $binary" >&2; exit 1; }
for tool in ldd dpkg dpkg-query readelf; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found" >&2; exit 77; }
done
if ! grep -q '^12\.' /etc/debian_version 2>/dev/null; then
  echo "SKIP: dpkg mapping is only meaningful on Debian 12 (bookworm), the image's base" >&2
  exit 77
fi

ldd_out=$(ldd "$binary") || { echo "FAIL: ldd $binary failed" >&2; exit 1; }
if grep -q 'not found' <<<"$ldd_out"; then
  fail "unresolved libraries on this host: $(grep 'not found' <<<"$ldd_out" | awk '{print $1}' | xargs)"
fi
mapfile -t needed < <(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p')

# Owner package of each library path, from one `dpkg -S` call. usrmerge means
# dpkg may know a file under /lib while ldd prints /usr/lib (or the other way),
# and ldd may print a symlink, so every spelling is asked for.
declare -A owner=()
spellings() {
  local p="$1" real
  real=$(readlink -f "$p")
  printf '%s\n' "$p" "$real" "${p#/usr}" "${real#/usr}" "/usr$p" "/usr$real" | sort -u
}
mapfile -t lib_paths < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_out")
mapfile -t candidates < <(for p in "${lib_paths[@]}"; do spellings "$p"; done | sort -u)
while IFS= read -r line; do
  pkgs="${line%%: *}"
  file="${line#*: }"
  [[ "$pkgs" == "$line" || "$pkgs" == diversion* ]] && continue
  owner[$file]="${pkgs%%,*}"
done < <(dpkg -S "${candidates[@]}" 2>/dev/null || true)
owner_of() {
  local c
  while read -r c; do
    if [[ -n "${owner[$c]:-}" ]]; then
      echo "${owner[$c]%%:*}"
      return 0
    fi
  done < <(spellings "$1")
  return 1
}

# Depends + Pre-Depends closure of the listed packages (installed ones only:
# this host has the same packages as the builder stage).
declare -A closure=()
frontier=("${listed[@]}")
for p in "${listed[@]}"; do closure[$p]=1; done
rounds=0
while [[ ${#frontier[@]} -gt 0 && $rounds -lt 50 ]]; do
  rounds=$((rounds + 1))
  deps=$(dpkg-query -W -f '${Depends}, ${Pre-Depends}\n' "${frontier[@]}" 2>/dev/null || true)
  frontier=()
  while read -r d; do
    [[ -z "$d" || -n "${closure[$d]:-}" ]] && continue
    if dpkg-query -W -f '${Status}' "$d" 2>/dev/null | grep -q 'install ok installed'; then
      closure[$d]=1
      frontier+=("$d")
    fi
  done < <(tr ',|' '\n\n' <<<"$deps" | sed -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' | awk 'NF' | sort -u)
done

is_in() { local x="$1"; shift; local e; for e in "$@"; do [[ "$e" == "$x" ]] && return 0; done; return 1; }

checked=0
declare -A used_pkgs=()
while read -r soname path; do
  [[ -z "$path" ]] && continue
  checked=$((checked + 1))
  if ! pkg=$(owner_of "$path"); then
    fail "$soname ($path) belongs to no Debian package: the image cannot install it"
    continue
  fi
  pkg="${pkg%%,*}"
  used_pkgs[$pkg]=1
  if is_in "$pkg" "${listed[@]}" || is_in "$pkg" "${base_packages[@]}"; then
    continue
  fi
  if is_in "$soname" "${needed[@]}"; then
    fail "$soname is linked directly (DT_NEEDED) and comes from $pkg, which deploy/runtime-packages.txt and the Dockerfile do not list"
  elif [[ -z "${closure[$pkg]:-}" ]]; then
    fail "$soname (needed indirectly) comes from $pkg, which no listed package depends on"
  fi
done < <(awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 } $1 ~ /^\// { n = split($1, a, "/"); print a[n], $1 }' <<<"$ldd_out")

[[ $checked -gt 0 ]] || fail "ldd resolved no library for $binary"

# Listed packages that provide no library to this binary: harmless, but dead
# weight in the image (ca-certificates is data, not a library).
for p in "${listed[@]}"; do
  [[ "$p" == ca-certificates || -n "${used_pkgs[$p]:-}" ]] ||
    echo "NOTE: $p is listed but provides no library that $(basename "$binary") loads"
done

if [[ $failures -gt 0 ]]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "OK: $checked libraries of $(basename "$binary") are covered by ${#listed[@]} runtime packages (${#closure[@]} with dependencies)"
