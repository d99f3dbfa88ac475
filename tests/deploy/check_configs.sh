#!/usr/bin/env bash
# Runs `dynamo-batcher --check-config` (the service's own start-up validation)
# on every sidecar config shipped in deploy/: the image's default and the
# kustomize base/overlay files that become the ConfigMap. The environment
# overrides are cleared so only the files are judged.
#   check_configs.sh [--repo DIR] BINARY
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ "${1:-}" == "--repo" ]]; then repo="$2"; shift 2; fi
binary="${1:?usage: $0 [--repo DIR] BINARY}"
[[ -x "$binary" ]] || { echo "FAIL: not an executable: $binary" >&2; exit 1; }
binary="$(readlink -f "$binary")"

mapfile -t configs < <(cd "$repo" && { echo deploy/container-config.yaml;
  find deploy/kubernetes -name dynamo-batcher.yaml | sort; })
failures=0
for c in "${configs[@]}"; do
  if out=$(cd "$repo" && env -u DYNAMO_BATCHER_LISTEN -u DYNAMO_BATCHER_METRICS_LISTEN \
             -u DYNAMO_BATCHER_ENDPOINT -u DYNAMO_BATCHER_REGION \
             "$binary" --check-config --config "$c" 2>&1); then
    echo "ok   $out"
  else
    echo "FAIL: $c: $out" >&2
    failures=$((failures + 1))
  fi
done
[[ ${#configs[@]} -ge 3 ]] || { echo "FAIL: expected at least 3 configs, found ${#configs[@]}" >&2; exit 1; }
[[ $failures -eq 0 ]] || exit 1
echo "OK: ${#configs[@]} configs accepted by $(basename "$binary") --check-config"
