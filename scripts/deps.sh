#!/usr/bin/env bash
# Installs everything the build, tests, demo and benchmarks need. Idempotent:
# a second run installs nothing.
set -euo pipefail

# gcc and libc6-dev: the critest tier's image helpers are static C programs.
pkgs=(containerd runc runsc busybox-static iproute2 protobuf-compiler procps util-linux tar containernetworking-plugins iptables gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts a system containerd on install; our tests run private ones and
# must not depend on (or fight) it, so leave it alone but never assume it.
if ! command -v cargo >/dev/null; then
  echo "deps: cargo not found; install a Rust toolchain (rustup) first" >&2
  exit 1
fi
echo "deps: ok ($(containerd --version | awk '{print $3}'), $(runsc --version | head -1))"
