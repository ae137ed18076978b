#!/usr/bin/env bash
# Installs the system packages the tests and demos use (Debian 12, as root).
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail
packages=(attr fuse3 libnfs-utils xz-utils curl umoci busybox-static skopeo docker-registry iproute2 nftables)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The POSIX conformance suite run against the FUSE mount
# (tests/e2e/pjdfstest.rs) and the user it switches to.
if [ "$(id -u)" -eq 0 ]; then
  id tests >/dev/null 2>&1 || useradd -M -U tests
  [ -x /opt/pjdfstest/bin/pjdfstest ] ||
    cargo install --quiet --locked pjdfstest --version 0.2.2 --root /opt/pjdfstest
fi
