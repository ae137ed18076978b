#!/usr/bin/env bash
# Installs the system packages the tests and demos use (Debian 12, as root).
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail
packages=(attr fuse3 libnfs-utils xz-utils curl umoci busybox-static skopeo docker-registry iproute2 nftables)
# The microVM runtime: QEMU, the guest kernel (booted, never run on the
# host) and, to link the virtiofsd library, libcap-ng and liblzma.
# Installed without recommends (the kernel's would pull firmware and more).
vm_packages=(qemu-system-x86 linux-image-amd64 libcap-ng-dev liblzma-dev)
missing=() vm_missing=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${vm_packages[@]}"; do installed "$p" || vm_missing+=("$p"); done
if [ $((${#missing[@]} + ${#vm_missing[@]})) -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} ${vm_missing[*]} (run as root, or: sudo apt-get install ${missing[*]} ${vm_missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || apt-get install -y -qq "${missing[@]}" >/dev/null
  [ ${#vm_missing[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${vm_missing[@]}" >/dev/null
fi
# The POSIX conformance suite run against the FUSE mount
# (tests/e2e/pjdfstest.rs) and the user it switches to.
if [ "$(id -u)" -eq 0 ]; then
  id tests >/dev/null 2>&1 || useradd -M -U tests
  [ -x /opt/pjdfstest/bin/pjdfstest ] ||
    cargo install --quiet --locked pjdfstest --version 0.2.2 --root /opt/pjdfstest
fi
