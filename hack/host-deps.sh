#!/usr/bin/env bash
# Installs the Debian packages the test suites use, if any are missing.
# Idempotent; run as root (CI does). Each suite lists what it needs in
# hack/host-deps/<suite>.txt, one "<debian-package> <file-it-provides>" per line.
set -euo pipefail
cd "$(dirname "$0")"
missing=()
while read -r package provides; do
  [[ -z "$package" || "$package" == \#* ]] && continue
  if [[ "$provides" == /* ]]; then
    [[ -e "$provides" ]] || missing+=("$package")
  else
    command -v "$provides" >/dev/null 2>&1 || missing+=("$package")
  fi
done < <(cat host-deps/*.txt)
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "host-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
