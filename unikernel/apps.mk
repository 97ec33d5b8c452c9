# The registry of the bundled unikernel's apps: the one list. The Makefile includes it and
# mirage_env/registry.py reads it (simple `NAME := words` lines only, no make functions).

APPS := hello ping auth www echo

# Core subsystems (core/NAME.c) each app links.
CORE_hello := rt csprng
CORE_ping := rt csprng netif cksum eth arp ipv4 icmp udp dhcp
CORE_auth := rt csprng netif cksum eth arp ipv4 icmp udp dhcp tcp http kv sha256 pbkdf2 diskkv fat tar
CORE_www := rt csprng netif cksum eth arp ipv4 icmp udp dhcp tcp http kv diskkv fat tar
CORE_echo := rt csprng netif cksum eth arp ipv4 icmp udp dhcp tcp

# Apps that only exist as Xen kernels (echo serves a vchan to dom0).
XEN_APPS := echo
# Apps whose key/value data (data/APP, packed by tools/pack_data.py) is linked in.
DATA_APPS := auth www
# Apps that can stand in for a domU probe (they ask DHCP and answer on the network).
PROBE_APPS := auth www ping echo
# The TCP port each networked app serves on (0: none).
PORT_hello := 0
PORT_ping := 0
PORT_auth := 8088
PORT_www := 80
PORT_echo := 0
