#!/usr/bin/env bash
# Builds a released Go tool from the Go module proxy into a cache that
# outlives clones of this repository (nothing is installed system-wide):
#   containerd VERSION   containerd, ctr and containerd-shim-runc-v2
#   containerd-stress VERSION   containerd's load generator
#   cri-tools VERSION    critest and crictl
# Idempotent: a finished build (its stamp file) is not built again.
# Prints the directory holding the binaries.
#
# Usage: scripts/go-build.sh containerd|cri-tools VERSION
#   RUNSC_SHIM_CACHE: the cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/runsc-shim)
set -euo pipefail

what=$1
version=$2
cache=${RUNSC_SHIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runsc-shim}
out="$cache/go/$what-$version"
stamp="$out/.built"
[ -f "$stamp" ] && { echo "$out/bin"; exit 0; }
# One build of a version at a time (tiers and tools may ask together).
mkdir -p "$cache/go"
exec 9>"$out.lock"
flock 9
[ -f "$stamp" ] && { echo "$out/bin"; exit 0; }

go=$(command -v go || true)
[ -n "$go" ] || [ ! -x /usr/local/go/bin/go ] || go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "go-build: no Go toolchain (go on PATH or /usr/local/go/bin/go)" >&2
  exit 1
fi

case $what in
  containerd)
    module=github.com/containerd/containerd/v2
    pkgs=(./cmd/containerd ./cmd/ctr ./cmd/containerd-shim-runc-v2)
    # The version containerd reports (a module build would say "+unknown").
    ldflags="-X $module/version.Version=${version#v}"
    ;;
  containerd-stress)
    # containerd's own load generator, for the soak (make soak).
    module=github.com/containerd/containerd/v2
    pkgs=(./cmd/containerd-stress)
    ldflags="-X $module/version.Version=${version#v}"
    ;;
  cri-tools)
    module=sigs.k8s.io/cri-tools
    # critest is a test binary (built below with `go test -c`).
    pkgs=(./cmd/crictl)
    ldflags="-X $module/pkg/version.Version=${version#v}"
    ;;
  *)
    echo "go-build: unknown tool $what" >&2
    exit 2
    ;;
esac

export GOTOOLCHAIN=local GOFLAGS="-mod=mod -tags=no_btrfs"
# Built in the module's own directory, as its main module: `go install
# pkg@version` refuses modules whose go.mod has exclude directives
# (containerd 2.0's has).
dir=$("$go" mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "go-build: the module proxy did not serve $module@$version" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out/bin"
(cd "$dir" && "$go" build -trimpath -ldflags "$ldflags" -o "$out/bin/" "${pkgs[@]}") >&2
if [ "$what" = cri-tools ]; then
  (cd "$dir" && "$go" test -c -trimpath -ldflags "$ldflags" -o "$out/bin/critest" ./cmd/critest) >&2
fi
touch "$stamp"
echo "$out/bin"
