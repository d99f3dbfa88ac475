#!/usr/bin/env bash
# Builds every libFuzzer target with clang++ (-fsanitize=fuzzer,address,
# undefined; the code under test is compiled in the same command, so it is
# instrumented for coverage too) and runs each for SECONDS. Fails on any
# crash, leak, sanitizer report or invariant violation (abort).
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS]      (default 10 s per target)
#
# Outputs go to BUILD_DIR/fuzz/: binaries, generated proto sources (protoc),
# a corpus per target (kept between runs), logs, crash-* artifacts.
# FUZZ_TARGETS="credentials_json config" restricts the set; FUZZ_RUNS=N runs N inputs
# instead of a time budget. ubsan.supp: one known issue in Debian's RapidJSON
# (pointer-overflow is recoverable only so that it can be suppressed there;
# halt_on_error still stops on any other report).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${1:?usage: tests/fuzz/run.sh BUILD_DIR [SECONDS]}
SECONDS_PER_TARGET=${2:-10}
mkdir -p "$BUILD_DIR"
OUT=$(cd "$BUILD_DIR" && pwd)/fuzz
mkdir -p "$OUT/gen"
CXX=${FUZZ_CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz: $CXX not found (Debian: clang, libclang-rt-14-dev)"; exit 1; }

protoc --cpp_out="$OUT/gen" -I "$ROOT/proto" "$ROOT/proto/dynamobatcher/v1/batcher.proto" \
  "$ROOT/proto/dynamobatcher/internal/write_request.proto"

FLAGS=(-std=c++17 -g -O1 -fno-omit-frame-pointer
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fsanitize-recover=pointer-overflow
       -I "$ROOT" -I "$OUT/gen" -DRAPIDJSON_HAS_STDSTRING=1 -w)
ABSL_LIBS=$(pkg-config --libs absl_status absl_statusor absl_strings absl_str_format absl_time \
            absl_flat_hash_map absl_flat_hash_set absl_hash absl_raw_hash_set absl_synchronization)
CODEC=("$ROOT"/service/codec/codec.cc "$ROOT"/service/codec/number.cc "$ROOT"/service/codec/text.cc)
PB="$OUT/gen/dynamobatcher/v1/batcher.pb.cc $OUT/gen/dynamobatcher/internal/write_request.pb.cc"

declare -A SOURCES LIBS
SOURCES[codec]="$ROOT/tests/fuzz/codec_fuzz.cc ${CODEC[*]} $PB"
LIBS[codec]="$(pkg-config --libs protobuf) $ABSL_LIBS"
SOURCES[response_parser]="$ROOT/tests/fuzz/response_parser_fuzz.cc $ROOT/service/dynamodb/response_parser.cc ${CODEC[*]} $PB"
LIBS[response_parser]="$(pkg-config --libs protobuf) $ABSL_LIBS"
SOURCES[credentials_json]="$ROOT/tests/fuzz/credentials_json_fuzz.cc $ROOT/service/auth/credentials_json.cc $ROOT/service/auth/iso8601.cc"
LIBS[credentials_json]="$ABSL_LIBS"
SOURCES[config]="$ROOT/tests/fuzz/config_fuzz.cc $ROOT/service/config/config.cc"
LIBS[config]="$(pkg-config --libs yaml-cpp) $ABSL_LIBS"

TARGETS=${FUZZ_TARGETS:-codec response_parser credentials_json config}

seed() {  # small valid inputs so the fuzzers start from the interesting part
  local t=$1 dir=$OUT/corpus/$1
  mkdir -p "$dir"
  case $t in
    credentials_json)
      printf '%s' '{"AssumeRoleWithWebIdentityResponse":{"AssumeRoleWithWebIdentityResult":{"Credentials":{"SessionToken":"T\u00261","SecretAccessKey":"S","Expiration":1.714568400E9,"AccessKeyId":"A"}},"ResponseMetadata":{"RequestId":"r"}}}' > "$dir/seed-sts"
      printf '%s' '{"AssumeRoleWithWebIdentityResponse":{"AssumeRoleWithWebIdentityResult":{"Credentials":{"SessionToken":"T","SecretAccessKey":"S","Expiration":"2024-05-01T13:00:00Z","AccessKeyId":"A"}}}}' > "$dir/seed-sts-iso"
      printf '%s' '{"Error":{"Code":"InvalidIdentityToken","Message":"m","Type":"Sender"},"RequestId":"r"}' > "$dir/seed-err"
      printf '%s' '{"Code":"Success","AccessKeyId":"A","SecretAccessKey":"S","Token":"T","Expiration":"2024-05-01T13:00:00Z"}' > "$dir/seed-json" ;;
    config)
      cp "$ROOT/config.yaml" "$dir/seed-config.yaml" ;;
    response_parser)
      printf '%s' '{"UnprocessedItems":{"events":[{"PutRequest":{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}}}}]},"ConsumedCapacity":[{"TableName":"events","CapacityUnits":1}]}' > "$dir/seed-ok" ;;
    *) ;;
  esac
}

status=0
for t in $TARGETS; do
  bin=$OUT/${t}_fuzz
  echo "fuzz: building $t"
  # shellcheck disable=SC2086
  "$CXX" "${FLAGS[@]}" ${SOURCES[$t]} -o "$bin" ${LIBS[$t]} -lpthread
  seed "$t"
  mkdir -p "$OUT/artifacts/$t"
  limit=(-max_total_time="$SECONDS_PER_TARGET")
  [ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
  if [ -n "${FUZZ_RUNS:-}" ]; then budget="$FUZZ_RUNS runs"; else budget="${SECONDS_PER_TARGET}s"; fi
  echo "fuzz: running $t ($budget)"
  t0=$(date +%s)
  if ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1} \
     UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$ROOT/tests/fuzz/ubsan.supp} \
     "$bin" "${limit[@]}" -print_final_stats=1 -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$OUT/artifacts/$t/" "$OUT/corpus/$t" > "$OUT/$t.log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$t.log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$OUT/$t.log" | tail -1 || true)
    echo "fuzz: $t OK: $runs executions in $(( $(date +%s) - t0 ))s, $cov"
  else
    echo "fuzz: $t FAILED (log: $OUT/$t.log)"
    grep -E 'ERROR|SUMMARY|runtime error|deadly signal|Test unit written' "$OUT/$t.log" | head -20 || true
    status=1
  fi
done
exit $status
