#!/usr/bin/env bash
# Builds the real Kubernetes parts the tests and the demo run, from Go modules, once per
# machine and version. No registry ships these binaries; the Go module proxy ships the source.
#
#   build-control-plane.sh MINOR [COMPONENT...]
#   build-control-plane.sh --minors        # the supported minors, newest first
#
# MINOR is a supported Kubernetes minor (see VERSIONS below), or `newest` / `oldest`.
# COMPONENTs are any of
# kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet pause etcd helm crane
# registry; the default is kube-apiserver, kube-controller-manager, kubectl and etcd (crane
# and registry are go-containerregistry's, for the image: cargo xtask image; kube-scheduler,
# kubelet and pause, the pod sandbox's process compiled static from the same module's
# build/pause/linux/pause.c, run the chart's Deployment on a node: tests/tests/kubelet.rs).
# Prints the directory holding the binaries on stdout (progress goes to stderr), e.g.
#   ~/.cache/labpods/k8s-1.37.2/bin
# etcd, helm, crane and registry are version-independent and shared by every minor (symlinked in).
# Idempotent: a cached binary is only reported. Concurrent runs are serialized by a lock.
set -euo pipefail

# The supported range: the newest minor and the oldest one upstream still supports.
# A new patch release is a one-line change here; nothing else names these numbers.
MINORS=(1.37 1.35)
declare -A VERSIONS=([1.37]=1.37.2 [1.35]=1.35.4)
ETCD_VERSION=3.6.16
HELM_VERSION=3.22.0
GGCR_VERSION=0.22.1

log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

minor=${1:-}
case $minor in
  --minors) printf '%s\n' "${MINORS[*]}"; exit 0 ;;
  newest) minor=${MINORS[0]} ;;
  oldest) minor=${MINORS[-1]} ;;
  "") die "usage: $0 MINOR|newest|oldest [COMPONENT...] (supported: ${MINORS[*]})" ;;
esac
shift
version=${VERSIONS[$minor]:-}
[ -n "$version" ] || die "Kubernetes $minor is not supported; supported minors: ${MINORS[*]}"
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kube-apiserver kube-controller-manager kubectl etcd)

# CI may run us as root with HOME unset: fall back to the account's home directory.
HOME_DIR=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
export HOME=$HOME_DIR
CACHE=${LABPODS_CACHE:-$HOME_DIR/.cache/labpods}
OUT=$CACHE/k8s-$version
BIN=$OUT/bin
SHARED=$CACHE/tools
mkdir -p "$BIN" "$SHARED"

missing() {
  local what
  for what in "${components[@]}"; do
    [ -x "$BIN/$what" ] || { printf '%s\n' "$what"; }
  done
}

if [ -z "$(missing)" ]; then
  log "cached in $BIN"
  printf '%s\n' "$BIN"
  exit 0
fi

exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then
  log "another build is running; waiting for it"
  flock 9
fi

command -v go >/dev/null || die "Go is needed to build the control plane (apt-get install golang-go, or Go >= 1.24 on PATH)"

# Static binaries, no VCS stamping (the module cache has no .git), paths trimmed.
export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local

# build NAME MODULE_DIR PACKAGE LDFLAGS: go build into a temporary file, then rename, so an
# interrupted build never leaves a binary that looks finished.
build() {
  local name=$1 dir=$2 package=$3 ldflags=$4 target=$5 start
  start=$(date +%s)
  log "building $name (cold: several minutes on 2 cores; progress in $dir/build-${name%% *}.log)"
  (
    cd "$dir"
    # A line a minute so nobody stares at a silent terminal.
    while sleep 60; do log "  still building $name ($(( ($(date +%s) - start) / 60 )) min)"; done &
    ticker=$!
    trap 'kill $ticker 2>/dev/null' EXIT
    go build -trimpath -ldflags "$ldflags" -o "$target.tmp" "$package" >"build-${name%% *}.log" 2>&1 || {
      tail -40 "build-${name%% *}.log" >&2; exit 1; }
  )
  mv "$target.tmp" "$target"
  log "built $name in $(( $(date +%s) - start ))s"
}

# A module of our own that requires the wanted version, so the proxy's source is all we use.
kubernetes_module() {
  local dir=$OUT/module gomod
  mkdir -p "$dir"
  if [ ! -f "$dir/go.mod.done" ]; then
    log "resolving k8s.io/kubernetes v$version from the Go module proxy"
    gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
    [ -f "$gomod" ] || die "could not download k8s.io/kubernetes v$version"
    {
      printf 'module labpods.dev/control-plane\n\ngo %s\n\nrequire k8s.io/kubernetes v%s\n\n' \
        "$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")" "$version"
      # Every staging module k8s.io/kubernetes replaces with ./staging/... is published as
      # k8s.io/<name> v0.<minor>.<patch>.
      sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod" |
        while read -r module; do printf 'replace %s => %s v0.%s\n' "$module" "$module" "${version#1.}"; done
    } >"$dir/go.mod"
    printf 'package main\n' >"$dir/doc.go"
    touch "$dir/go.mod.done"
  fi
  printf '%s\n' "$dir"
}

kubernetes_ldflags() {
  local major=${version%%.*} rest=${version#*.} flags="-s -w" pkg
  local minor_number=${rest%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor_number"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s\n' "$flags"
}

# A version-independent tool, built once into $SHARED and linked into this minor's bin.
shared_tool() {
  local name=$1 module=$2 module_version=$3 package=$4 ldflags=$5
  local dir=$SHARED/$name-$module_version
  if [ ! -x "$dir/$name" ]; then
    mkdir -p "$dir"
    printf 'module labpods.dev/%s\n\ngo 1.24\n\nrequire %s %s\n' "$name" "$module" "v$module_version" >"$dir/go.mod"
    printf 'package main\n' >"$dir/doc.go"
    build "$name $module_version" "$dir" "$package" "$ldflags" "$dir/$name"
  else
    log "$name $module_version cached"
  fi
  ln -sfn "$dir/$name" "$BIN/$name"
}

for what in $(missing); do
  case $what in
    kube-apiserver | kube-controller-manager | kubectl | kube-scheduler | kubelet)
      dir=$(kubernetes_module)
      build "$what v$version" "$dir" "k8s.io/kubernetes/cmd/$what" "$(kubernetes_ldflags)" "$BIN/$what"
      ;;
    pause)
      # C, not Go: what registry.k8s.io/pause runs. Static, so the image needs nothing else.
      command -v cc >/dev/null || die "a C compiler is needed for pause (apt-get install gcc libc6-dev)"
      source_dir=$(cd "$(kubernetes_module)" && go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
      [ -f "$source_dir/build/pause/linux/pause.c" ] || die "no build/pause/linux/pause.c in k8s.io/kubernetes v$version"
      # The flags and version of build/pause/Makefile.
      pause_version=$(sed -n 's/^TAG ?= //p' "$source_dir/build/pause/Makefile")
      cc -Os -Wall -Werror -static -DVERSION="v$pause_version" -o "$BIN/pause.tmp" "$source_dir/build/pause/linux/pause.c"
      mv "$BIN/pause.tmp" "$BIN/pause"
      log "built pause v$pause_version from k8s.io/kubernetes v$version"
      ;;
    etcd)
      shared_tool etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 \
        "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION"
      ;;
    helm)
      shared_tool helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
        "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
      ;;
    crane | registry)
      shared_tool "$what" github.com/google/go-containerregistry "$GGCR_VERSION" \
        "github.com/google/go-containerregistry/cmd/$what" "-s -w"
      ;;
    *) die "unknown component '$what' (kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet pause etcd helm crane registry)" ;;
  esac
done
log "done: $BIN"
printf '%s\n' "$BIN"
