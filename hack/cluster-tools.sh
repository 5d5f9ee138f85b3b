#!/usr/bin/env bash
# Build (once) and cache the binaries of the e2e test cluster from Go modules:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, helm
# and kwok. Versions are pinned by the go.mod files under hack/k8s-tools/<group>.
#
# Binaries land in ${KUBETRAIN_CACHE:-$HOME/.cache/kubetrain}/tools/<name>-<version>/<name>,
# with symlinks in .../tools/bin. Nothing is written into the clone: each module
# is copied into the cache and built there. A cached binary is reused at once.
#
# usage: hack/cluster-tools.sh [NAME...]   (default: all tools)
# The last stdout line is always KUBETRAIN_TOOLS_BIN=<dir>.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODS=$ROOT/hack/k8s-tools
CACHE=${KUBETRAIN_CACHE:-$HOME/.cache/kubetrain}
TOOLS=$CACHE/tools
BIN=$TOOLS/bin

# name, module dir, module whose version keys the cache, main package
TABLE='
kube-apiserver          kubernetes k8s.io/kubernetes         k8s.io/kubernetes/cmd/kube-apiserver
kube-controller-manager kubernetes k8s.io/kubernetes         k8s.io/kubernetes/cmd/kube-controller-manager
kube-scheduler          kubernetes k8s.io/kubernetes         k8s.io/kubernetes/cmd/kube-scheduler
kubectl                 kubernetes k8s.io/kubernetes         k8s.io/kubernetes/cmd/kubectl
etcd                    etcd       go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3
helm                    helm       helm.sh/helm/v3           helm.sh/helm/v3/cmd/helm
kwok                    kwok       sigs.k8s.io/kwok          sigs.k8s.io/kwok/cmd/kwok
'

log() { echo "cluster-tools: $*" >&2; }

# modversion DIR MODULE: the version of MODULE that DIR/go.mod requires.
modversion() {
  awk -v m="$2" '
    $1 == "require" && $2 == m { print $3; exit }
    $1 == m && $2 ~ /^v/       { print $2; exit }
  ' "$MODS/$1/go.mod"
}

# ldflags NAME VERSION: linker flags; version stamps matter because helm and
# kubectl compare the server's reported version against chart/skew constraints.
ldflags() {
  local name=$1 ver=$2 f='-s -w'
  case $name in
    kube-*|kubectl)
      local minor=${ver#v1.}; minor=${minor%%.*}
      for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        f+=" -X $p.gitVersion=$ver -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
      done ;;
    helm)
      # helm's Makefile stamps the client-go minor as the default kube version
      # that `helm template` renders for (otherwise it claims v1.20).
      local cg; cg=$(modversion helm k8s.io/client-go); cg=${cg#v0.}; cg=${cg%%.*}
      local h=helm.sh/helm/v3
      f+=" -X $h/internal/version.version=$ver -X $h/internal/version.gitTreeState=clean"
      f+=" -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$cg"
      f+=" -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$cg" ;;
  esac
  printf '%s' "$f"
}

want=("$@")
selected() {
  [ ${#want[@]} -eq 0 ] && return 0
  local w; for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

mkdir -p "$BIN"
exec 9>"$TOOLS/.lock"
flock 9   # parallel callers (several pytest sessions) build each tool once

total_start=$(date +%s)
built=0
while read -r name dir mod pkg; do
  [ -n "$name" ] || continue
  selected "$name" || continue
  ver=$(modversion "$dir" "$mod")
  [ -n "$ver" ] || { log "no version of $mod in $MODS/$dir/go.mod"; exit 1; }
  out=$TOOLS/$name-$ver/$name
  if [ ! -x "$out" ]; then
    command -v go >/dev/null || { log "go is required to build $name $ver"; exit 1; }
    work=$CACHE/work/$dir
    mkdir -p "$work" "$(dirname "$out")"
    cp "$MODS/$dir"/go.mod "$MODS/$dir"/go.sum "$MODS/$dir"/tools.go "$work"/
    log "building $name $ver ..."
    start=$(date +%s)
    (cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 \
      go build -trimpath -ldflags="$(ldflags "$name" "$ver")" -o "$out.tmp" "$pkg")
    mv -f "$out.tmp" "$out"
    log "built $name $ver in $(( $(date +%s) - start ))s"
    built=$((built + 1))
  fi
  ln -sfn "$out" "$BIN/$name"
done <<<"$TABLE"
[ "$built" -eq 0 ] || log "built $built tool(s) in $(( $(date +%s) - total_start ))s"

echo "KUBETRAIN_TOOLS_BIN=$BIN"
