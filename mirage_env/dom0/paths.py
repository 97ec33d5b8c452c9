"""Where things are on a dom0: what the roles install and what Xen and dnsmasq write."""

from __future__ import annotations

SRC = "/opt/mirage-env/src"  # the unikernel sources (`unikernel` role)
UNIKERNEL_OUT = "/var/lib/mirage-env/unikernel"  # the built images
TOOLS_DIR = "/var/lib/mirage-env/tools"  # helpers copied over by the controller (e.g. the vchan client)
XL_DIR = "/etc/xen"
VIF_SCRIPT = "vif-mirage"  # the domUs' vif hotplug script (`script=`), installed by the xen_dom0 role
BLOCK_SCRIPT = "block-mirage"  # their disks' block hotplug script (`script=`), installed by the same role
AUTO_DIR = "/etc/xen/auto"  # xendomains boots the configs linked here with the dom0
CONSOLE_DIR = "/var/log/xen/console"  # xenconsoled --log=guest
LEASE_FILE = "/var/lib/misc/dnsmasq.leases"
DNSMASQ_CONF = "/etc/dnsmasq.d/*.conf /etc/dnsmasq.conf"  # a shell glob: every file dnsmasq reads


def console_log(name: str) -> str:
    return f"{CONSOLE_DIR}/guest-{name}.log"


def xl_config(name: str) -> str:
    return f"{XL_DIR}/{name}.cfg"


def autostart_link(name: str) -> str:
    return f"{AUTO_DIR}/{name}.cfg"
