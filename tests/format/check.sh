#!/usr/bin/env bash
# Fails when a tracked C++ source differs from .clang-format's style, and
# prints the files and the first lines of the diff. Fix: tests/format/check.sh --fix
set -euo pipefail
cd "$(dirname "$0")/../.."
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
mapfile -t files < <(git ls-files '*.cc' '*.h' '*.cpp' | grep -v '^client/java/\|^client/go/')
if [ "${1:-}" = "--fix" ]; then
  "$CLANG_FORMAT" -i "${files[@]}"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  if ! diff -q <("$CLANG_FORMAT" "$f") "$f" >/dev/null; then
    echo "not formatted: $f"
    diff -u "$f" <("$CLANG_FORMAT" "$f") | head -20 || true
    bad=$((bad + 1))
  fi
done
echo "${#files[@]} files checked, $bad not formatted (fix: tests/format/check.sh --fix)"
[ "$bad" -eq 0 ]
