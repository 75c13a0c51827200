#!/usr/bin/env bash
# The DR failover drill on the local lab (the README's main command, `make drill`):
# installs what is missing, brings both sites up from scratch with synchronous replication, starts a writer that
# commits rows continuously, kills the primary site, runs playbooks/dr-failover.yml and prints the report's
# summary with the path to its HTML page. `scripts/drill.sh --async` drills asynchronous replication;
# `scripts/drill.sh down` removes the DR lab.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=$(bash scripts/bootstrap.sh | tail -1)
export PATH="$venv/bin:$PATH"
# shellcheck source=scripts/lab-ports.sh
. scripts/lab-ports.sh
if [ "${1:-}" = down ]; then
  "$venv/bin/python" -m lab.dr down
  "$venv/bin/python" -m lab.dns down
  exit 0
fi
reserve_lab_ports
"$venv/bin/python" -m lab.dns up
exec "$venv/bin/python" -m lab.dr.drill "$@"
