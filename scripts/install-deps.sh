#!/usr/bin/env bash
# Installs everything mirage-env and its test suite need on a Debian/Ubuntu machine:
# system packages (apt) and the Python package in a virtualenv at .venv. Run as root.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: run as root (e.g. sudo -i, then run it again)" >&2
  exit 2
fi

SYSTEM_PACKAGES=(
  # the built-in machine
  qemu-system-x86 qemu-utils debootstrap iproute2 e2fsprogs fdisk mount openssh-client ca-certificates
  # Python
  python3 python3-venv python3-pip
  # the bundled unikernel: build, C tests, fuzzers, net tests, benchmarks
  make gcc libc6-dev clang libclang-rt-14-dev llvm binutils libxen-dev
  # disk images for the key/value store (unikernel/tools/mkdisk.py): mkfs.fat, mcopy
  dosfstools mtools
  dnsmasq-base curl iputils-ping bridge-utils wrk nginx-light busybox-static
  # DHCP servers the client is tested against (tests/net/test_dhcp_servers.py; udhcpd is busybox's),
  # run there as plain processes in a namespace; their system services are disabled below
  isc-dhcp-server kea-dhcp4-server tcpdump
  # the NAT unit's commands (tests/unit/test_nat_unit.py)
  iptables
  graphviz  # mirage-env status --graph (dot → SVG/PNG)
  # the Vagrant path: Vagrant with its libvirt provider, and libvirt itself (tests/e2e/test_vagrant_libvirt.py)
  vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # policy-rc.d: packages such as nginx must not start system services on this machine
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The DHCP servers' packages enable system services: they must never serve this machine's real
# interfaces (policy-rc.d above kept them from starting during the install; this keeps them off at boot).
for service in isc-dhcp-server kea-dhcp4-server; do
  dpkg-query -W -f='${Status}' "$service" 2>/dev/null | grep -q "install ok installed" || continue
  # (systemctl disable also works where systemd is not running, e.g. in a container)
  systemctl disable "$service" >/dev/null 2>&1 || update-rc.d "$service" disable >/dev/null 2>&1 || true
  [ -d /run/systemd/system ] && systemctl stop "$service" >/dev/null 2>&1 || true
done

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
echo "install-deps.sh: ready (.venv/bin/mirage-env)"
