#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager 1.20.2 from Debian's source package and
# installs etcd, once per machine. No registry ships these binaries; Debian ships the source
# with its Go dependencies vendored. Output: $LABPODS_CACHE/k8s-1.20.2/bin.
set -euo pipefail

CACHE=${LABPODS_CACHE:-$HOME/.cache/labpods}
OUT=$CACHE/k8s-1.20.2
BIN=$OUT/bin
log() { printf '[control-plane] %s\n' "$*" >&2; }

if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] && command -v etcd >/dev/null; then
  log "cached in $BIN"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# A deb-src twin of the machine's own Debian entries, so no archive host is named here.
if [ ! -f /etc/apt/sources.list.d/labpods-src.sources ]; then
  log "adding deb-src entries"
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
    $SUDO tee /etc/apt/sources.list.d/labpods-src.sources >/dev/null
fi
log "installing build dependencies (golang-go, etcd-server, rsync, jq)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
  golang-go etcd-server rsync jq golang-github-modern-go-reflect2-dev dpkg-dev >/dev/null
# Debian starts etcd as a service on install; the tests run their own.
$SUDO systemctl disable --now etcd >/dev/null 2>&1 || $SUDO pkill -x etcd 2>/dev/null || true

WORK=$OUT/src
mkdir -p "$WORK" "$BIN"
cd "$WORK"
if [ ! -d kubernetes-1.20.2 ]; then
  log "fetching the kubernetes source package"
  apt-get source -qq --download-only kubernetes >/dev/null
  dpkg-source -x --no-check kubernetes_*.dsc kubernetes-1.20.2 >/dev/null
fi
SRC=$WORK/kubernetes-1.20.2
# The vendored reflect2 1.0.1 crashes at run time under Go >= 1.18; Debian's 1.0.2 works.
rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$SRC/vendor/github.com/modern-go/reflect2"
rm -f "$SRC/vendor/github.com/modern-go/reflect2/go.mod"

# GOPATH mode, as Debian's own rules build it.
export GOPATH=$SRC/.gopath HOME=${HOME:-$SRC} CGO_ENABLED=0 GO111MODULE=off GOFLAGS=-mod=vendor
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$SRC" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
for what in kube-apiserver kube-controller-manager; do
  if [ ! -x "$BIN/$what" ]; then
    log "building $what (several minutes on 2 cores)"
    start=$(date +%s)
    make WHAT=cmd/$what KUBE_VERBOSE=0 >"$OUT/build-$what.log" 2>&1 || {
      tail -40 "$OUT/build-$what.log" >&2; exit 1; }
    cp "_output/local/bin/linux/$(go env GOARCH)/$what" "$BIN/$what.tmp"
    mv "$BIN/$what.tmp" "$BIN/$what"
    log "built $what in $(( $(date +%s) - start ))s"
  fi
done
log "done: $BIN"
