#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager 1.20.2 from Debian's source package and
# installs etcd (and kubectl, if the machine has none), once per machine. No registry ships
# these binaries; Debian ships the source with its Go dependencies vendored.
# Output: $LABPODS_CACHE/k8s-1.20.2/bin (default ~/.cache/labpods). Idempotent: when the
# binaries are there it only says so. Safe to run concurrently (a lock serializes builds).
set -euo pipefail

# CI may run us as root with HOME unset: fall back to the account's home directory.
HOME_DIR=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
CACHE=${LABPODS_CACHE:-$HOME_DIR/.cache/labpods}
OUT=$CACHE/k8s-1.20.2
BIN=$OUT/bin
log() { printf '[control-plane] %s\n' "$*" >&2; }

installed() {
  [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] &&
    command -v etcd >/dev/null && command -v kubectl >/dev/null
}

if installed; then
  log "cached in $BIN"
  exit 0
fi

mkdir -p "$BIN"
exec 9>"$OUT/.build.lock"
if ! flock -n 9; then
  log "another build is running; waiting for it"
  flock 9
fi
if installed; then
  log "cached in $BIN"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

# A deb-src twin of the machine's own Debian entries, so no archive host is named here.
if [ ! -f /etc/apt/sources.list.d/labpods-src.sources ]; then
  log "adding deb-src entries"
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
    $SUDO tee /etc/apt/sources.list.d/labpods-src.sources >/dev/null
fi
log "installing build dependencies (golang-go, etcd-server, rsync, jq)"
$SUDO apt-get update -qq
packages=(golang-go etcd-server rsync jq golang-github-modern-go-reflect2-dev dpkg-dev)
# Debian's kubectl (1.20) only where the machine has no kubectl of its own.
command -v kubectl >/dev/null || packages+=(kubernetes-client)
$SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
# Debian starts an etcd service on install where systemd runs; the tests run their own.
if [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
fi

WORK=$OUT/src
SRC=$WORK/kubernetes-1.20.2
mkdir -p "$WORK"
cd "$WORK"
if [ ! -d "$SRC" ]; then
  log "fetching the kubernetes source package"
  ls kubernetes_*.dsc >/dev/null 2>&1 || apt-get source -qq --download-only kubernetes >/dev/null
  # Unpacked aside and renamed, so an interrupted run never leaves a half tree behind.
  rm -rf "$SRC.partial"
  dpkg-source -x --no-check kubernetes_*.dsc "$SRC.partial" >/dev/null
  mv "$SRC.partial" "$SRC"
fi
# The vendored reflect2 1.0.1 crashes at run time under Go >= 1.18; Debian's 1.0.2 works.
rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$SRC/vendor/github.com/modern-go/reflect2"
rm -f "$SRC/vendor/github.com/modern-go/reflect2/go.mod"

# GOPATH mode, as Debian's own rules build it.
export GOPATH=$SRC/.gopath HOME=$HOME_DIR CGO_ENABLED=0 GO111MODULE=off GOFLAGS=-mod=vendor
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
# The unpacked tree is 2 GB; the downloaded source package stays for a rebuild.
cd "$WORK"
rm -rf "$SRC"
log "done: $BIN"
