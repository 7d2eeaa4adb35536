#!/usr/bin/env bash
# Installs the Debian packages the test suites use, if any are missing.
# Idempotent; run as root (CI does). Add a package here when a suite needs it.
set -euo pipefail
packages=(iproute2 golang-go)
commands=(ip go)
missing=()
for i in "${!packages[@]}"; do
  command -v "${commands[$i]}" >/dev/null 2>&1 || missing+=("${packages[$i]}")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
