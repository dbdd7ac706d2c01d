# Sourced by the tests' install scripts: installs (once) a Debian package that provides a
# tool the tests run, and prints where the tool is.
#
#   apt_install_once NAME PACKAGE FIND [NOTE]
#
# FIND is a function that prints the tool's path (or directory) and succeeds once it is
# installed; NOTE is added to the progress line (e.g. the download size). Concurrent test
# processes are serialised by a lock; the second finds the tool installed. A package's
# services are not started: only its tools are wanted (policy-rc.d refuses them during the
# install).

log() { printf '[%s] %s\n' "$APT_TOOL" "$*" >&2; }

apt_install_once() {
  local package=$2 find=$3 note=${4:-}
  APT_TOOL=$1
  "$find" && return 0
  command -v apt-get >/dev/null || { log "error: $APT_TOOL is missing and there is no apt-get; install Debian's $package"; return 1; }
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)

  local cache=${LABPODS_CACHE:-${HOME:-/root}/.cache/labpods}
  mkdir -p "$cache"
  exec 9>"$cache/.$APT_TOOL.lock"
  flock 9
  "$find" && return 0

  log "installing Debian's $package package (apt-get update first${note:+; $note})"
  "${sudo[@]}" apt-get update -qq >&2
  local policy=/usr/sbin/policy-rc.d made_policy=0 status=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$package" >&2 || status=$?
  [ "$made_policy" -eq 0 ] || "${sudo[@]}" rm -f "$policy"
  [ "$status" -eq 0 ] || { log "error: apt-get install $package failed ($status)"; return "$status"; }
  "$find" || { log "error: $package installed but $APT_TOOL is not on PATH"; return 1; }
}
