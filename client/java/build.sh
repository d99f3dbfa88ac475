#!/usr/bin/env bash
# Builds the Java client and its example offline with plain javac against the
# Debian-packaged jars (libgrpc-java, libprotobuf-java, libnetty-java,
# libperfmark-java, libguava-java); no Maven, nothing fetched.
#
#   client/java/build.sh OUT_DIR  -> OUT_DIR/dynamo-batcher-client.jar and
#                                    OUT_DIR/classpath (the jar + its runtime jars)
#                                    OUT_DIR/test-classes (StreamEndTest)
#   java -cp "$(cat OUT_DIR/classpath)" dev.dynamobatcher.client.Example --target HOST:PORT
#   client/java/build.sh OUT_DIR --test  also runs StreamEndTest
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
J=/usr/share/java
# Compile time: the API jars. Run time adds the Netty transport and what
# grpc-core needs (perfmark, guava's failureaccess is inside Debian's guava).
COMPILE=(grpc-api grpc-stub grpc-protobuf grpc-protobuf-lite grpc-core grpc-context protobuf guava)
RUNTIME=(grpc-netty netty-buffer netty-codec netty-codec-http netty-codec-http2 netty-codec-socks
         netty-common netty-handler netty-handler-proxy netty-resolver netty-transport
         netty-transport-native-unix-common perfmark-api error-prone-annotations jsr305)
cp_of() { local IFS=:; local out=(); for j in "$@"; do out+=("$J/$j.jar"); done; echo "${out[*]}"; }
for j in "${COMPILE[@]}" "${RUNTIME[@]}"; do
  [ -f "$J/$j.jar" ] || { echo "missing $J/$j.jar (install the Debian packages in ./dev)" >&2; exit 1; }
done
rm -rf "$OUT/gen" "$OUT/classes" "$OUT/test-classes"
mkdir -p "$OUT/gen" "$OUT/classes" "$OUT/test-classes"
protoc -I"$REPO/proto" --java_out="$OUT/gen" \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin --grpc-java_out="$OUT/gen" \
  "$REPO/proto/dynamobatcher/v1/batcher.proto"
# grpc-java 1.41's plugin always emits @javax.annotation.Generated, which is
# not in the JDK since 11 (and its option to omit it came later): drop it.
sed -i '/^@javax.annotation.Generated(/,/)$/d' "$OUT/gen/dev/dynamobatcher/v1/WriteBatcherGrpc.java"
javac -nowarn -encoding UTF-8 -d "$OUT/classes" -cp "$(cp_of "${COMPILE[@]}")" \
  $(find "$OUT/gen" "$HERE/src" -name '*.java')
jar cf "$OUT/dynamo-batcher-client.jar" -C "$OUT/classes" .
echo "$OUT/dynamo-batcher-client.jar:$(cp_of "${COMPILE[@]}" "${RUNTIME[@]}")" > "$OUT/classpath"
javac -nowarn -encoding UTF-8 -d "$OUT/test-classes" \
  -cp "$OUT/classes:$(cp_of "${COMPILE[@]}")" $(find "$HERE/test" -name '*.java')
if [ "${2:-}" = "--test" ]; then
  java -cp "$(cat "$OUT/classpath"):$OUT/test-classes" dev.dynamobatcher.client.StreamEndTest
fi
