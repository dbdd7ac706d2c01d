#!/usr/bin/env bash
# Installs (once) Debian's prometheus package for its promtool, which tests the chart's
# alert rules (tests/tests/alerts.rs), and prints promtool's path on stdout. Only the tool is
# used: the package's service is not started (policy-rc.d refuses it during the install).
set -euo pipefail

log() { printf '[promtool] %s\n' "$*" >&2; }

if command -v promtool >/dev/null 2>&1; then
  command -v promtool
  exit 0
fi
command -v apt-get >/dev/null || { log "error: promtool is missing and there is no apt-get; install Prometheus' promtool"; exit 1; }
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)

# Serialize concurrent test processes; the second finds promtool installed.
CACHE=${LABPODS_CACHE:-${HOME:-/root}/.cache/labpods}
mkdir -p "$CACHE"
exec 9>"$CACHE/.promtool.lock"
flock 9
if command -v promtool >/dev/null 2>&1; then
  command -v promtool
  exit 0
fi

log "installing Debian's prometheus package for promtool (apt-get update first)"
"${SUDO[@]}" apt-get update -qq >&2
# Keep the package's service from starting here: only promtool is wanted.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod +x "$policy"
  made_policy=1
fi
status=0
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends prometheus >&2 || status=$?
[ "$made_policy" -eq 0 ] || "${SUDO[@]}" rm -f "$policy"
[ "$status" -eq 0 ] || { log "error: apt-get install prometheus failed ($status)"; exit "$status"; }
command -v promtool
