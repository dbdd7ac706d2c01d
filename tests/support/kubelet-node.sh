#!/usr/bin/env bash
# Installs (once) what a node of tests/tests/kubelet.rs runs besides the kubelet: Debian's
# containerd (with runc), the CNI plugins (bridge, host-local, loopback in /usr/lib/cni) and
# iproute2 (the node's bridge); prints the CNI plugins' directory on stdout. Only the tools are
# used: containerd's service is not started (the test starts its own containerd, with its own
# configuration and directories).
set -euo pipefail
. "$(dirname "$0")/apt-install.sh"

has_ip() { command -v ip >/dev/null 2>&1; }
has_containerd() {
  command -v containerd >/dev/null 2>&1 && command -v containerd-shim-runc-v2 >/dev/null 2>&1 \
    && command -v runc >/dev/null 2>&1
}
has_cni() {
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ]
}

apt_install_once iproute2 iproute2 has_ip
apt_install_once containerd containerd has_containerd
apt_install_once cni-plugins containernetworking-plugins has_cni
echo /usr/lib/cni
