#!/usr/bin/env bash
# Stops the VM that scripts/vm/boot.sh STATE started (by its pid) and
# removes its state directory.
# Usage: scripts/vm/stop.sh STATE_DIR
set -uo pipefail
state=$1
if [ -f "$state/qemu.pid" ]; then
  pid=$(cat "$state/qemu.pid")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null
  fi
fi
rm -rf "$state"
