#!/usr/bin/env bash
# Creates (once) the Python venv the Redfish interop tests use and prints its path.
# Holds sushy-tools (the emulator nobody here wrote), bcrypt (for the htpasswd used with
# basic auth), redfish-service-validator (run against labpods-sim), pycdlib (an ISO 9660
# implementation the NoCloud seed images are checked against) and jsonschema with PyYAML
# (the pod descriptors are validated against the pharos schemas, as pharos does). Idempotent: a venv whose
# stamp matches the pinned package list is reused as is.
set -euo pipefail

VENV="${LABPODS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/labpods/venv}"
PACKAGES=(
  "sushy-tools==2.2.0"
  "bcrypt"
  "redfish-service-validator"
  "pycdlib==1.22.0"
  "jsonschema==4.26.0"
  "PyYAML==6.0.3"
)
STAMP="$VENV/.labpods-packages"
WANT="$(printf '%s\n' "${PACKAGES[@]}")"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "$VENV"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "python-venv.sh: $PYTHON not found; install Python 3 (e.g. apt-get install python3 python3-venv)" >&2
  exit 1
fi

mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
"$VENV/bin/python" -m pip install --quiet "${PACKAGES[@]}" >&2
printf '%s\n' "$WANT" >"$STAMP"
echo "$VENV"
