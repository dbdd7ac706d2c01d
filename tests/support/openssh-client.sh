#!/usr/bin/env bash
# Installs (once) Debian's openssh-client, whose `ssh -G` and `ssh-keygen` the tests use to
# read the access Secret's ssh_config and known_hosts as a user's ssh would, and prints the
# directory holding ssh on stdout.
set -euo pipefail

log() { printf '[openssh-client] %s\n' "$*" >&2; }

found() {
  command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 \
    && dirname "$(command -v ssh)"
}

found && exit 0
command -v apt-get >/dev/null || { log "error: ssh is missing and there is no apt-get; install OpenSSH's client"; exit 1; }
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)

# Serialize concurrent test processes; the second finds ssh installed.
CACHE=${LABPODS_CACHE:-${HOME:-/root}/.cache/labpods}
mkdir -p "$CACHE"
exec 9>"$CACHE/.openssh-client.lock"
flock 9
found && exit 0

log "installing Debian's openssh-client package (apt-get update first)"
"${SUDO[@]}" apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends openssh-client >&2 \
  || { log "error: apt-get install openssh-client failed"; exit 1; }
found || { log "error: openssh-client installed but ssh is not on PATH"; exit 1; }
