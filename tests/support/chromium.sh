#!/usr/bin/env bash
# Installs (once) Debian's chromium package, with which the tests open the HTML that people
# read (tests/tests/kubectl_lab_report.rs renders `kubectl lab report --format html`), and
# prints the browser's path on stdout.
set -euo pipefail

log() { printf '[chromium] %s\n' "$*" >&2; }

find_browser() {
  for b in chromium chromium-browser; do
    if command -v "$b" >/dev/null 2>&1; then
      command -v "$b"
      return 0
    fi
  done
  return 1
}

find_browser && exit 0
command -v apt-get >/dev/null || { log "error: chromium is missing and there is no apt-get; install Chromium"; exit 1; }
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)

# Serialize concurrent test processes; the second finds chromium installed.
CACHE=${LABPODS_CACHE:-${HOME:-/root}/.cache/labpods}
mkdir -p "$CACHE"
exec 9>"$CACHE/.chromium.lock"
flock 9
find_browser && exit 0

log "installing Debian's chromium package (apt-get update first; about 100 MB)"
"${SUDO[@]}" apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >&2 \
  || { log "error: apt-get install chromium failed"; exit 1; }
find_browser || { log "error: chromium installed but not on PATH"; exit 1; }
