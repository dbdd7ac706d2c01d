#!/usr/bin/env bash
# Installs (once) Debian's openssh-client, whose `ssh -G` and `ssh-keygen` the tests use to
# read the access Secret's ssh_config and known_hosts as a user's ssh would, and prints the
# directory holding ssh on stdout.
set -euo pipefail
. "$(dirname "$0")/apt-install.sh"

found() {
  command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 \
    && dirname "$(command -v ssh)"
}

apt_install_once openssh-client openssh-client found
