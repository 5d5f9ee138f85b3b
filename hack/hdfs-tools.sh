#!/usr/bin/env bash
# Build (once) and cache a real single-node HDFS for tests: Hadoop's shaded
# minicluster from Maven Central plus our launcher hack/hdfs/.../MiniHdfs.java.
#
# The classpath lands in ${KUBETRAIN_CACHE:-$HOME/.cache/kubetrain}/hdfs-<hadoop version>-<pom
# hash>/ (lib/*.jar, classes/): a changed dependency list gets a directory of its own and never
# rewrites one that another checkout is using. Maven's own downloads stay in its local repository
# (~/.m2 unless MAVEN_OPTS says otherwise). Nothing is written into the clone.
# A cached classpath is reused at once; the launcher is recompiled when its
# source changes.
#
# usage: hack/hdfs-tools.sh            build; last stdout line is KUBETRAIN_HDFS_HOME=<dir>
#        hack/hdfs-tools.sh run ARGS   build, then exec the launcher (see MiniHdfs.java)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
POM=$ROOT/hack/hdfs/pom.xml
SRC=$ROOT/hack/hdfs/src/main/java/io/kubetrain/hdfs/MiniHdfs.java
CACHE=${KUBETRAIN_CACHE:-$HOME/.cache/kubetrain}
VERSION=$(sed -n 's:.*<hadoop.version>\(.*\)</hadoop.version>.*:\1:p' "$POM")
HOME_DIR=$CACHE/hdfs-$VERSION-$(sha256sum "$POM" | cut -c1-12)

log() { echo "hdfs-tools: $*" >&2; }

# hdfs-native (the trainer's HDFS client) loads MIT Kerberos' GSSAPI library at run time for
# the Kerberized test cluster; Debian ships it as libgssapi-krb5-2.
need_gssapi() {
  python3 -c 'import ctypes; ctypes.CDLL("libgssapi_krb5.so.2")' 2>/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing libgssapi-krb5-2 ..."
    apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends libgssapi-krb5-2 >&2
  else
    log "libgssapi_krb5.so.2 is required (apt-get install libgssapi-krb5-2)"; exit 1
  fi
}

build() {
  mkdir -p "$HOME_DIR"
  exec 9>"$HOME_DIR/.lock"
  flock 9   # parallel callers (several pytest sessions) build once
  if [ ! -f "$HOME_DIR/lib/.complete" ]; then
    command -v mvn >/dev/null || { log "mvn is required (apt-get install maven)"; exit 1; }
    log "fetching hadoop-client-minicluster $VERSION ..."
    local start; start=$(date +%s)
    rm -rf "$HOME_DIR/lib"
    # -f keeps Maven's working directory out of the clone; copy-dependencies
    # only resolves and copies, it builds nothing under hack/hdfs.
    mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$HOME_DIR/lib" >&2
    touch "$HOME_DIR/lib/.complete"
    log "fetched in $(( $(date +%s) - start ))s"
  fi
  local sum; sum=$(sha256sum "$SRC" | cut -d' ' -f1)
  if [ "$(cat "$HOME_DIR/classes/.source" 2>/dev/null)" != "$sum" ]; then
    command -v javac >/dev/null || { log "a JDK 17+ is required (apt-get install default-jdk-headless)"; exit 1; }
    log "compiling the launcher ..."
    rm -rf "$HOME_DIR/classes.tmp"
    javac -nowarn --release 17 -cp "$HOME_DIR/lib/*" -d "$HOME_DIR/classes.tmp" "$SRC"
    echo "$sum" > "$HOME_DIR/classes.tmp/.source"
    rm -rf "$HOME_DIR/classes"
    mv "$HOME_DIR/classes.tmp" "$HOME_DIR/classes"
  fi
  need_gssapi   # under the lock: one apt-get at a time
  exec 9>&-
}

build
if [ "${1:-}" = run ]; then
  shift
  # Serial GC and C1 only: a test cluster wants a fast start and little memory.
  exec java -Xmx768m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.net.preferIPv4Stack=true \
    -cp "$HOME_DIR/classes:$HOME_DIR/lib/*" io.kubetrain.hdfs.MiniHdfs "$@"
fi
echo "KUBETRAIN_HDFS_HOME=$HOME_DIR"
