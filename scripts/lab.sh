#!/usr/bin/env bash
# Start or stop the local lab: `scripts/lab.sh up|down|status`. Installs what it needs first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$(bash "$root/scripts/bootstrap.sh" | tail -1)
cd "$root"
case "${1:-up}" in
  up) "$venv/bin/python" -m lab.pg up ;;
  down) "$venv/bin/python" -m lab.pg down ${2:+"$2"} ;;
  status) "$venv/bin/python" -m lab.pg status ;;
  *) echo "usage: scripts/lab.sh up|down [--purge]|status" >&2; exit 2 ;;
esac
