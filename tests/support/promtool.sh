#!/usr/bin/env bash
# Installs (once) Debian's prometheus package for its promtool, which tests the chart's
# alert rules (tests/tests/alerts.rs), and prints promtool's path on stdout. Only the tool is
# used: the package's service is not started.
set -euo pipefail
. "$(dirname "$0")/apt-install.sh"

found() { command -v promtool; }

apt_install_once promtool prometheus found
