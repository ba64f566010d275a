#!/usr/bin/env bash
# Builds (once) the cgroup v2 + systemd VM the `vm` tier boots: Debian 13
# (trixie) from the machine's configured Debian mirror by debootstrap, with
# its own kernel, systemd as init, containerd 1.7, runc, runsc 0.0~20240729,
# CNI plugins and an ssh key of ours. Packed into an ext4 image without
# mounting anything. Cached under .cache/vm/<key>, the key hashing this
# script, so a change of packages or setup builds a new image.
#
# Usage: scripts/vm/image.sh   (prints the image directory)
set -euo pipefail
cd "$(dirname "$0")/../.."
suite=trixie
pkgs=systemd,systemd-sysv,dbus,udev,kmod,linux-image-amd64,initramfs-tools,openssh-server,iproute2,iptables,containerd,runc,runsc,containernetworking-plugins,busybox-static,procps,util-linux,tar,ca-certificates
key=$( { cat "$0"; echo "$suite $pkgs"; } | sha256sum | cut -c1-16)
out=$PWD/.cache/vm/$key
if [ -f "$out/ready" ]; then echo "$out"; exit 0; fi

for tool in debootstrap:debootstrap qemu-system-x86_64:qemu-system-x86 mkfs.ext4:e2fsprogs ssh-keygen:openssh-client; do
  command -v "${tool%%:*}" >/dev/null || missing="${missing:-} ${tool#*:}"
done
if [ -n "${missing:-}" ]; then
  echo "vm: installing$missing" >&2
  apt-get update -qq >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The mirror apt already uses (deb822 or one-line sources).
mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
  awk '{print $2}' | grep -v security | head -1) || true
mirror=${mirror:-http://deb.debian.org/debian}

exec 9>"$PWD/.cache/vm.lock"
flock 9
[ -f "$out/ready" ] && { echo "$out"; exit 0; }
rm -rf "$out"
mkdir -p "$out"
root=$out/rootfs
echo "vm: debootstrap $suite from $mirror (a few minutes)" >&2
start=$SECONDS
debootstrap --variant=minbase --include="$pkgs" "$suite" "$root" "$mirror" >"$out/debootstrap.log" 2>&1 ||
  { tail -20 "$out/debootstrap.log" >&2; exit 1; }
echo "vm: debootstrap took $((SECONDS - start)) s" >&2

ssh-keygen -q -t ed25519 -N '' -f "$out/id_ed25519"
echo runsc-shim-vm >"$root/etc/hostname"
echo '/dev/vda / ext4 rw,relatime 0 1' >"$root/etc/fstab"
mkdir -p "$root/root/.ssh" "$root/etc/systemd/network"
install -m 0600 "$out/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
printf '[Match]\nName=eth0\n[Network]\nDHCP=yes\n' >"$root/etc/systemd/network/10-eth0.network"
ln -sf /lib/systemd/system/systemd-networkd.service "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
# The tests start their own containerd; the packaged one stays off.
rm -f "$root/etc/systemd/system/multi-user.target.wants/containerd.service"
# Quick boots: no waiting for a network that user-mode networking gives at once.
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"
echo 'root:runsc' | chroot "$root" chpasswd
cp -L "$root/vmlinuz" "$out/vmlinuz"
cp -L "$root/initrd.img" "$out/initrd.img"
rm -rf "$root/var/cache/apt/archives"/*.deb
truncate -s 8G "$out/root.img"
mkfs.ext4 -q -F -d "$root" "$out/root.img"
rm -rf "$root"
touch "$out/ready"
echo "$out"
