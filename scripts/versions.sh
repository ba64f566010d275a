#!/usr/bin/env bash
# Fetches the other containerd and runsc versions users run into caches,
# without installing anything system-wide:
#   from Debian's mirror (the one this machine's apt configuration names),
#   into CACHE_DIR: runsc 0.0~20240729 (bookworm-backports), containerd
#   1.7 (trixie), containerd 2.1 (sid), Docker Engine 26.1.5 (trixie's
#   docker.io and docker-cli, with tini's static docker-init), and
#   bookworm's dynamic busybox (the critest image's: unlike busybox-static
#   its shell runs applets as programs, so a masked /bin/ls stays masked);
#   built from the Go module proxy by scripts/go-build.sh (its own cache,
#   kept across clones): containerd 2.0 and 2.3 (the LTS releases), 2.4
#   (current), and cri-tools' critest and crictl.
# Idempotent: what is already there is not fetched or built again. Prints
# nothing else on success but the directories, one per line:
# <name> <dir with the binaries>.
#
# Usage: scripts/versions.sh [CACHE_DIR]   (default: .cache/versions)
set -euo pipefail

cache=${1:-"$(cd "$(dirname "$0")/.." && pwd)/.cache/versions"}
mkdir -p "$cache"

# name  packages (comma-separated)  suite  a binary whose presence in
# <name>/usr/bin says the row was fetched (a row appears whole or not at all)
wanted=(
  "runsc-2024 runsc bookworm-backports runsc"
  "containerd-1.7 containerd trixie containerd"
  "containerd-2.1 containerd sid containerd"
  # dockerd and docker-proxy are in usr/sbin, the CLI is a package of its
  # own, and docker.io's usr/bin/docker-init links to tini's tini-static
  # (static, so trixie's libc is not needed): one directory on PATH holds
  # all four once usr/sbin's are linked into usr/bin.
  "docker-26 docker.io,docker-cli,tini trixie dockerd"
  # Its /bin is linked into usr/bin like usr/sbin below.
  "busybox-dynamic busybox bookworm busybox"
)

mirror() {
  local uri=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "versions: no Debian bookworm mirror in the apt configuration" >&2; exit 1; }
  echo "$uri"
}

need_update=0
for w in "${wanted[@]}"; do
  read -r name _ _ bin <<<"$w"
  [ -x "$cache/$name/usr/bin/$bin" ] || need_update=1
done

if [ "$need_update" = 1 ]; then
  uri=$(mirror)
  apt_dir="$cache/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  list="$apt_dir/sources.list"
  : >"$list"
  for suite in bookworm bookworm-backports trixie sid; do
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >>"$list"
  done
  opts=(-o "Dir::Etc::sourcelist=$list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::Cache=$apt_dir/cache" -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  apt-get "${opts[@]}" -qq update >/dev/null
  for w in "${wanted[@]}"; do
    read -r name pkgs suite bin <<<"$w"
    [ -x "$cache/$name/usr/bin/$bin" ] && continue
    # Extracted beside the row and renamed into place at the end, so an
    # interrupted fetch never leaves a row that looks complete.
    tmp="$cache/$name.partial"
    rm -rf "$tmp" && mkdir -p "$tmp"
    IFS=, read -r -a pkg_list <<<"$pkgs"
    for pkg in "${pkg_list[@]}"; do
      (cd "$apt_dir/debs" && rm -f "${pkg}"_*.deb && apt-get "${opts[@]}" -qq download "$pkg/$suite" >/dev/null)
      deb=$(ls "$apt_dir/debs/${pkg}"_*.deb | head -1)
      dpkg -x "$deb" "$tmp"
      rm -f "$deb"
    done
    mkdir -p "$tmp/usr/bin"
    if [ -d "$tmp/usr/sbin" ]; then
      for sbin in "$tmp"/usr/sbin/*; do
        ln -sfn "../sbin/$(basename "$sbin")" "$tmp/usr/bin/$(basename "$sbin")"
      done
    fi
    if [ -d "$tmp/bin" ]; then
      for b in "$tmp"/bin/*; do
        ln -sfn "../../bin/$(basename "$b")" "$tmp/usr/bin/$(basename "$b")"
      done
    fi
    rm -rf "$cache/$name" && mv "$tmp" "$cache/$name"
  done
fi

for w in "${wanted[@]}"; do
  read -r name _ _ _ <<<"$w"
  echo "$name $cache/$name/usr/bin"
done

# name  tool  version
built=(
  "containerd-2.0 containerd v2.0.14"
  "containerd-2.3 containerd v2.3.7"
  "containerd-2.4 containerd v2.4.2"
  "containerd-stress containerd-stress v2.3.7"
  "cri-tools cri-tools v1.37.0"
)
here=$(dirname "$0")
for b in "${built[@]}"; do
  read -r name tool version <<<"$b"
  echo "$name $("$here/go-build.sh" "$tool" "$version")"
done
