#!/usr/bin/env bash
# The cgroup v2 + systemd tier: boots the Debian 13 VM of scripts/vm/image.sh
# (systemd as init, cgroup v2 only, its own kernel; QEMU software
# emulation) and runs, inside it, test binaries built here against the shim
# built here:
#   - containerd 2.3 (the LTS, from scripts/versions.sh's cache) + Debian
#     13's runsc 0.0~20240729: the e2e tests that touch cgroups and the CRI
#     tier's cgroup tests on the cgroupfs driver; the whole CRI tier and
#     the systemd tests (Update through
#     systemd surviving `daemon-reload`, pod-level limits) on the kubelet's
#     systemd driver;
#   - Debian 13's containerd 1.7.24 + runsc 0.0~20240729: the CRI tier's
#     cgroup tests on the systemd driver.
# Prints each row's time and a table; fails if any row did. The VM is
# stopped (by pid) whatever happens.
#
# Usage: scripts/vm/tier.sh SHIM_DIR [LABEL-SUBSTRING [TEST-FILTER...]]
#   (only the rows whose label has LABEL-SUBSTRING, and in them only the
#   tests matching TEST-FILTER: for working on one thing)
set -euo pipefail
cd "$(dirname "$0")/../.."
shim_dir=$(cd "$1" && pwd)
only=${2:-}
filters=("${@:3}")

image=$(./scripts/vm/image.sh)
ct23=$(./scripts/versions.sh | awk '$1 == "containerd-2.3" {print $2}')

# The test binaries, built here (the VM has no toolchain).
declare -A bin
while read -r name path; do bin[$name]=$path; done < <(
  cargo test --locked -q -p integration --test e2e --test cri --test systemd --no-run --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])')

state=$(mktemp -d /tmp/runsc-shim-vm.XXXXXX)
# The guest's console (kernel messages: OOM kills, hangs) outlives the VM.
console=$PWD/target/vm-console.log
mkdir -p target
trap 'cp "$state/console.log" "$console" 2>/dev/null; ./scripts/vm/stop.sh "$state"' EXIT
# Killed (make test stops a background vm tier when a host tier fails):
# exit, so the trap above stops the VM.
trap 'exit 143' TERM INT
# And if this script dies without its trap (SIGKILL, or a signal that lands
# while bash cannot run it; CI once left the guest up so), a watchdog in a
# session of its own, out of reach of the group kill, stops the VM once
# this shell is gone.
setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; exec ./scripts/vm/stop.sh "$2"' \
  vm-watchdog $$ "$state" </dev/null >/dev/null 2>&1 &
port=$(./scripts/vm/boot.sh "$image" "$state")
ssh_opts=(-i "$image/id_ed25519" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o LogLevel=ERROR -o BatchMode=yes -o ServerAliveInterval=30)
vm() { ssh "${ssh_opts[@]}" root@127.0.0.1 "$@"; }

stage=$state/stage
mkdir -p "$stage/shim" "$stage/containerd-2.3" "$stage/tests"
cp "$shim_dir/containerd-shim-runsc-v1" "$stage/shim/"
cp "$ct23"/* "$stage/containerd-2.3/"
for t in e2e cri systemd; do cp "${bin[$t]}" "$stage/tests/$t"; done
tar -C "$stage" -cf - . | vm 'rm -rf /opt/t && mkdir -p /opt/t && tar -C /opt/t -xf -'
vm 'uname -r; stat -fc "cgroup fs: %T" /sys/fs/cgroup; ps -p1 -o comm=; containerd --version; runsc --version | head -1'

# What touches cgroups, plus enough of the rest to show the shim works
# there (the stdio-heavy tests take minutes under emulation and say
# nothing about cgroups).
smoke=(run::exit_codes run::echo_without_tty exec::exec_stdio events::run_and_exec pod::two_containers
  control::pause_resume_ps_and_metrics grpc::update_memory_limit faults::ids_that_prefix)
results=()
failed=0
# row LABEL CONTAINERD-DIR DRIVER TEST ARGS...
row() {
  local label=$1 ct=$2 driver=$3 test=$4
  shift 4
  [[ $label == *"$only"* ]] || return 0
  if [ "${#filters[@]}" -gt 0 ]; then
    local flags=() a
    for a; do [[ $a == --* ]] && flags+=("$a"); done
    set -- "${flags[@]}" "${filters[@]}"
  fi
  echo "vm: $label"
  local start=$SECONDS status=ok rc=0 limit=${ROW_LIMIT:-900}
  vm "cd /tmp && PATH=$ct:\$PATH RUNSC_SHIM_DIR=/opt/t/shim RUNSC_SHIM_TEST_CGROUP_DRIVER=$driver \
      CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 timeout -k 30 $limit /opt/t/tests/$test $*" 2>&1 |
    tee "$state/row.log" || rc=$?
  if [ "$rc" != 0 ]; then
    status=FAILED
    failed=1
  fi
  results+=("$(printf '%-7s %4ss  %s' "$status" $((SECONDS - start)) "$label")")
  # What failed, named in the table: CI shows a long log's head and tail only.
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    results+=("          timed out after $limit s")
  fi
  local name
  for name in $(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$state/row.log"); do
    results+=("          failed: $name")
  done
}

row "containerd 2.3 + runsc 2024, cgroupfs: e2e smoke" /opt/t/containerd-2.3 cgroupfs e2e --test-threads=2 "${smoke[@]}"
# The CRI tests that touch cgroups, OOM and stats on cgroupfs (the rest is
# the same on either driver, and the systemd row runs it all).
cgroup_cri=(lifecycle:: resources:: shims::)
row "containerd 2.3 + runsc 2024, cgroupfs: CRI cgroup tests" /opt/t/containerd-2.3 cgroupfs cri --test-threads=2 "${cgroup_cri[@]}"
row "containerd 2.3 + runsc 2024, systemd driver: CRI tier" /opt/t/containerd-2.3 systemd cri --test-threads=2
row "containerd 2.3 + runsc 2024, systemd driver: systemd tests" /opt/t/containerd-2.3 systemd systemd --test-threads=1 --include-ignored
row "containerd 1.7 + runsc 2024, systemd driver: CRI cgroup tests" /usr/bin systemd cri --test-threads=2 "${cgroup_cri[@]}"

# The table comes last, where CI's cut of a long log still shows it.
if [ "$failed" != 0 ]; then
  echo "vm: the guest's console is in $console; its last lines:"
  tail -20 "$state/console.log"
fi
echo
echo "cgroup v2 + systemd VM tier (Debian 13, QEMU TCG):"
printf '  %s\n' "${results[@]}"
exit "$failed"
