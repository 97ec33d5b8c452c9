"""The built-in machine's base image: a Debian box shaped like a fresh VirtualBox box.

debootstrap → partitioned raw disk (MBR, one ext4 partition) → GRUB installed in the image →
qcow2, cached under a hash of the recipe. The box has GRUB, systemd, ifupdown, openssh, python3,
a `vagrant` user with passwordless sudo and an image key — and no Xen: turning it into a dom0 is
the roles' job. Needs root (debootstrap, loop devices, mount).
"""

from __future__ import annotations

import hashlib
import json
import fcntl
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..procs import run_logged

RECIPE_VERSION = 4  # bump when the build steps change in a way the recipe fields do not show

BASE_PACKAGES = (
    "systemd-sysv", "udev", "kmod", "ifupdown", "isc-dhcp-client", "iproute2", "iputils-ping",
    "openssh-server", "python3", "python3-apt", "sudo", "procps", "netbase", "ca-certificates", "dbus",
    "linux-image-amd64", "grub-pc",
)

PART_OFFSET = 1024 * 1024  # the partition starts at 1 MiB, as fdisk would put it


@dataclass(frozen=True)
class ImageRecipe:
    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    security_mirror: str = "http://deb.debian.org/debian-security"
    disk_gib: int = 8
    packages: tuple[str, ...] = BASE_PACKAGES
    apt_proxy: str = "http://10.0.2.100:3142"  # the host-side proxy the QEMU provider forwards
    user: str = "vagrant"
    version: int = RECIPE_VERSION
    extra: dict = field(default_factory=dict)

    def digest(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class BaseImage:
    disk: Path  # qcow2, never written to: environments run on overlays
    key: Path  # the image's own SSH key; replaced by a per-environment key on first boot
    user: str


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mirage-env" / "images"


def ensure_base_image(
    recipe: ImageRecipe,
    cache: Path | None = None,
    log: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> BaseImage:
    """Return the cached image for `recipe`, building it first when it is not there."""
    folder = (cache or cache_root()) / f"debian-{recipe.suite}-{recipe.digest()}"
    image = BaseImage(folder / "disk.qcow2", folder / "image_key", recipe.user)
    if image.disk.exists() and image.key.exists():
        return image
    folder.mkdir(parents=True, exist_ok=True)
    # two environments brought up at once (a lab) must not build the same image twice:
    # the second waits for the first and then finds the image there
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image.disk.exists() and image.key.exists():
            return image
        return _build_base_image(recipe, folder, image, log, progress)


def _build_base_image(recipe: "ImageRecipe", folder: Path, image: "BaseImage", log: Path | None,
                      progress: Callable[[str], None] | None) -> "BaseImage":
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="build-", dir=folder) as tmp:
        work = Path(tmp)
        _keygen(work / "image_key")
        rootfs = work / "rootfs"
        say(f"debootstrap {recipe.suite} from {recipe.mirror}")
        # In a mount namespace of its own: the /proc and /sys debootstrap mounts inside the rootfs go
        # with it when it is stopped half-way, instead of staying mounted under the cache.
        run_logged(
            ["unshare", "--mount", "--propagation", "private",
             "debootstrap", "--variant=minbase", "--include=" + ",".join(recipe.packages),
             recipe.suite, rootfs, recipe.mirror],
            log, on_line=lambda line: say("debootstrap: " + line[:100]),
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        say("configuring the box")
        fs_uuid = str(uuid.uuid4())
        _configure_rootfs(rootfs, recipe, (work / "image_key.pub").read_text(), fs_uuid)
        say("partitioning, copying the root filesystem, installing GRUB")
        raw = work / "disk.raw"
        _make_disk(raw, rootfs, recipe, fs_uuid, log)
        say("converting to qcow2")
        run_logged(["qemu-img", "convert", "-O", "qcow2", raw, work / "disk.qcow2"], log)
        (work / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2))
        for name in ("image_key", "image_key.pub", "recipe.json"):
            shutil.move(work / name, folder / name)
        shutil.move(work / "disk.qcow2", image.disk)  # last: its presence marks the image complete
    return image


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mirage-env image key",
                    "-f", str(path)], check=True)


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    target = root / rel.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LANG": "C"}


def _chroot(rootfs: Path, *args: str, log: Path | None = None) -> None:
    run_logged(["chroot", rootfs, *args], log, env=CHROOT_ENV)


def _configure_rootfs(root: Path, recipe: ImageRecipe, pubkey: str, fs_uuid: str) -> None:
    user = recipe.user
    _write(root, "/etc/hostname", "debian-box\n")
    _write(root, "/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tdebian-box\n")
    _write(root, "/etc/fstab", f"UUID={fs_uuid}\t/\text4\terrors=remount-ro\t0\t1\n")
    # Like a fresh box: NIC 1 (NAT) on DHCP, NIC 2 (host-only) left to the roles.
    _write(root, "/etc/network/interfaces",
           "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n"
           "allow-hotplug eth0\niface eth0 inet dhcp\n")
    _write(root, "/etc/apt/sources.list",
           f"deb {recipe.mirror} {recipe.suite} main\n"
           f"deb {recipe.mirror} {recipe.suite}-updates main\n"
           f"deb {recipe.security_mirror} {recipe.suite}-security main\n")
    # QEMU's user-mode NIC runs with restrict=on: apt reaches the archive only through the
    # host-side proxy, which forwards to the host's own apt sources and nothing else.
    _write(root, "/etc/apt/apt.conf.d/01mirage-env-proxy",
           f'Acquire::http::Proxy "{recipe.apt_proxy}";\n')
    _write(root, "/etc/default/grub",
           'GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\nGRUB_DISTRIBUTOR="Debian"\n'
           'GRUB_CMDLINE_LINUX_DEFAULT=""\n'
           'GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200 net.ifnames=0"\n'
           'GRUB_DISABLE_LINUX_UUID=true\n'
           'GRUB_TERMINAL="serial console"\nGRUB_SERIAL_COMMAND="serial --speed=115200"\n')
    _write(root, "/etc/ssh/sshd_config.d/10-mirage-env.conf",
           "UseDNS no\nPasswordAuthentication no\n")
    # Host keys are made on each machine's first boot, not shared by every copy of the image.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root, "/etc/systemd/system/ssh-host-keys.service",
           "[Unit]\nDescription=Generate SSH host keys on first boot\n"
           "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\nBefore=ssh.service\n\n"
           "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n\n"
           "[Install]\nWantedBy=multi-user.target\n")
    _write(root, f"/etc/sudoers.d/{user}", f"{user} ALL=(ALL) NOPASSWD: ALL\n", 0o440)
    (root / "etc/machine-id").write_text("")  # each machine makes its own on first boot
    _chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", user)
    ssh_dir = root / "home" / user / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pubkey)
    _chroot(root, "chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh")
    _chroot(root, "systemctl", "enable", "ssh-host-keys.service")
    # Nothing that phones out on its own: the periodic apt jobs go.
    _chroot(root, "systemctl", "mask", "apt-daily.timer", "apt-daily-upgrade.timer")
    _chroot(root, "sh", "-c",
            "echo 'grub-pc grub-pc/install_devices multiselect /dev/vda' | debconf-set-selections")
    _chroot(root, "apt-get", "clean")
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()
    # The package lists are gone: make them look old, so `apt update_cache cache_valid_time=…`
    # (what roles do) refreshes them instead of trusting a cache that is empty.
    os.utime(root / "var/lib/apt/lists", (0, 0))


def _make_disk(raw: Path, rootfs: Path, recipe: ImageRecipe, fs_uuid: str, log: Path | None) -> None:
    size = recipe.disk_gib * 1024**3
    with open(raw, "wb") as disk:
        disk.truncate(size)
    run_logged(["sfdisk", "--quiet", raw], log, input_text="label: dos\nstart=2048, type=83, bootable\n")
    # The host kernel makes no partition devices for loop disks: map the partition by offset.
    part = run_logged(["losetup", "-f", "--show", "-o", str(PART_OFFSET),
                       "--sizelimit", str(size - PART_OFFSET), raw], log).strip().splitlines()[-1]
    whole = None
    mnt = raw.parent / "mnt"
    grub_cfg = raw.parent / "grub.cfg"
    try:
        run_logged(["mkfs.ext4", "-q", "-F", "-L", "root", "-U", fs_uuid, "-d", rootfs, part], log)
        whole = run_logged(["losetup", "-f", "--show", raw], log).strip().splitlines()[-1]
        mnt.mkdir()
        run_logged(["unshare", "--mount", "--propagation", "private", "sh", "-euc", GRUB_STEPS,
                    "grub-steps", part, whole, mnt, grub_cfg], log, env=CHROOT_ENV)
        if "menuentry" not in grub_cfg.read_text():
            raise RuntimeError("update-grub wrote no menu entry into the image's grub.cfg")
    finally:
        for dev in (whole, part):
            if dev:
                subprocess.run(["losetup", "-d", dev], check=False)
        subprocess.run(["sync"], check=False)
    _check_clean(raw, size, log)


# Run in a mount namespace of its own. The host's / is a private mount: a namespace made while
# the image is mounted (`ip netns exec`, libvirt's QEMU, another helper's unshare) would copy the
# mount and keep the filesystem open after our umount, leaving an image that "needs recovery".
# The umount is a real one, not lazy: the journal must be checkpointed before the disk is copied,
# or GRUB finds a filesystem that needs recovery and no grub.cfg in it.
GRUB_STEPS = r"""
part=$1 whole=$2 mnt=$3 grub_cfg_copy=$4
mount "$part" "$mnt"
for sub in dev proc sys; do mount --bind "/$sub" "$mnt/$sub"; done
# GRUB sees no partition table on the offset loop device: force the modules it needs.
chroot "$mnt" grub-install --target=i386-pc --modules="part_msdos ext2" "$whole"
# Debian's grub scripts skip /dev/loop* roots and would write no menu entry at all.
mkdir -p "$mnt/etc/default/grub.d"
echo GRUB_DEVICE=/dev/vda1 > "$mnt/etc/default/grub.d/99-image-build.cfg"
chroot "$mnt" update-grub
rm "$mnt/etc/default/grub.d/99-image-build.cfg"
cp "$mnt/boot/grub/grub.cfg" "$grub_cfg_copy"
umount "$mnt/sys" "$mnt/proc" "$mnt/dev"
tries=0
until umount "$mnt"; do
    tries=$((tries + 1)); [ "$tries" -lt 10 ] || { echo "could not unmount $mnt" >&2; exit 1; }
    sleep 1
done
"""


def _check_clean(raw: Path, size: int, log: Path | None) -> None:
    """Refuse an image whose filesystem was not cleanly unmounted: it would not boot."""
    part = run_logged(["losetup", "-f", "--show", "-r", "-o", str(PART_OFFSET),
                       "--sizelimit", str(size - PART_OFFSET), raw], log).strip().splitlines()[-1]
    try:
        header = run_logged(["dumpe2fs", "-h", part], log)
    finally:
        subprocess.run(["losetup", "-d", part], check=False)
    if "needs_recovery" in header:
        raise RuntimeError("the image's filesystem was not cleanly unmounted; build it again")
