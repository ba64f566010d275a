#!/usr/bin/env bash
# Boots the VM of scripts/vm/image.sh under QEMU's software emulation (this
# host's KVM cannot run a guest), with writes going to a throwaway overlay
# (`snapshot=on`): the cached image stays as built. ssh on 127.0.0.1 only.
# Waits until ssh answers, then prints the ssh port; QEMU's pid is in
# STATE/qemu.pid, its console in STATE/console.log. Stop it with
# scripts/vm/stop.sh STATE.
#
# Usage: scripts/vm/boot.sh IMAGE_DIR STATE_DIR
set -euo pipefail
image=$1 state=$2
mkdir -p "$state"
# A free port: the kernel picks one for a socket we close at once.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "$port" >"$state/port"
# One TCG thread for both vCPUs: with a thread per vCPU, the guest
# kernel's live text patching (static keys, toggled e.g. by a memory cgroup
# OOM kill) races QEMU 7.2's translated code and the guest dies of an
# "Oops: int3" in whatever ran the patched function.
qemu-system-x86_64 -accel tcg,thread=single -cpu max -m "${VM_MEMORY:-6G}" -smp 2 \
  -display none -serial "file:$state/console.log" -monitor none \
  -daemonize -pidfile "$state/qemu.pid" \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 net.ifnames=0 quiet" \
  -drive "file=$image/root.img,format=raw,if=virtio,cache=unsafe,snapshot=on" \
  -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$port-:22"
ssh_opts=(-i "$image/id_ed25519" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o LogLevel=ERROR -o ConnectTimeout=5 -o BatchMode=yes)
start=$SECONDS
until ssh "${ssh_opts[@]}" root@127.0.0.1 true 2>/dev/null; do
  if ! kill -0 "$(cat "$state/qemu.pid")" 2>/dev/null; then
    echo "vm: QEMU exited; console:" >&2
    tail -30 "$state/console.log" >&2
    exit 1
  fi
  if [ $((SECONDS - start)) -gt "${VM_BOOT_LIMIT:-600}" ]; then
    echo "vm: no ssh after $((SECONDS - start)) s; console:" >&2
    tail -30 "$state/console.log" >&2
    exit 1
  fi
  sleep 3
done
echo "vm: ssh after $((SECONDS - start)) s" >&2
echo "$port"
