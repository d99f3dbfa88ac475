#!/usr/bin/env bash
# ctest bench_smoke: bench/run --quick must finish, exit 0 and print its table
# (floor and sidecar -> nginx rows), so the benchmark scripts don't rot.
# usage: bench_smoke.sh <repo>/bench/run <build dir>
set -uo pipefail
run=$1
build_dir=$2
# Without nginx (Debian package) the suite cannot run: skipped, not failed.
command -v nginx >/dev/null || { echo "bench_smoke: nginx not installed, skipping"; exit 77; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 100 bash "$run" --quick --no-docs --no-build --build-dir "$build_dir" >"$out" 2>&1
rc=$?
cat "$out"
if [[ $rc != 0 ]]; then
  echo "bench_smoke: bench/run exited $rc"
  exit 1
fi
for row in '| floor: batchctl → ack-only gRPC server | max |' \
           '| sidecar → nginx (instant backend) | max |' \
           '| sidecar → nginx (instant backend) | 50% |' \
           '| mean batch size ≥ 24 at saturation |'; do
  if ! grep -qF -- "$row" "$out"; then
    echo "bench_smoke: the table has no row starting with: $row"
    exit 1
  fi
done
# Every op answered: the sidecar rows must show 5,000 ops.
if ! grep -F '| sidecar → nginx (instant backend) | max | 5,000 |' "$out" >/dev/null; then
  echo "bench_smoke: sidecar -> nginx did not answer all 5,000 ops"
  exit 1
fi
echo "bench_smoke: ok"
