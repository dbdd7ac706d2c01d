#!/usr/bin/env bash
# Installs (once) Debian's chromium package, with which the tests open the HTML that people
# read (tests/tests/kubectl_lab_report.rs renders `kubectl lab report --format html`), and
# prints the browser's path on stdout.
set -euo pipefail
. "$(dirname "$0")/apt-install.sh"

find_browser() {
  for b in chromium chromium-browser; do
    if command -v "$b" >/dev/null 2>&1; then
      command -v "$b"
      return 0
    fi
  done
  return 1
}

apt_install_once chromium chromium find_browser "about 100 MB"
