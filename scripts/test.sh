#!/usr/bin/env bash
# Everything CI runs: `scripts/test.sh [all|unit|integration|lint|sanity]` (default all).
# Installs what is missing (scripts/bootstrap.sh), starts the lab, runs the tests, stops what it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
what=${1:-all}
venv=$(bash scripts/bootstrap.sh | tail -1)
export PATH="$venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$root/.collections"
py="$venv/bin/python"
status=0

# shellcheck source=scripts/lab-ports.sh
. scripts/lab-ports.sh

# The labs the tests need; each is stopped at the end only when this run started it.
labs_started=()
lab_up() {
  local lab
  reserve_lab_ports
  for lab in pg dns redis acme k8s; do
    if ! "$py" -m "lab.$lab" status 2>/dev/null | grep -q running || "$py" -m "lab.$lab" status | grep -q stopped; then
      labs_started+=("$lab")
    fi
    "$py" -m "lab.$lab" up
  done
}
cleanup() {
  local lab
  for lab in "${labs_started[@]}"; do "$py" -m "lab.$lab" down || true; done
}
trap cleanup EXIT

run_lint() {
  echo "== ruff"
  "$venv/bin/ruff" check . || status=1
  echo "== ansible-lint (production profile)"
  "$venv/bin/ansible-lint" --profile production || status=1
}

run_sanity() {
  # ansible-test needs the collection at .../ansible_collections/ops/runbooks: copy the tracked files there.
  local work="${OPS_RUNBOOKS_CACHE:-$HOME/.cache/ops-runbooks}/sanity/ansible_collections/ops/runbooks"
  rm -rf "$work" && mkdir -p "$work"
  # Only what ships in the collection is checked; lab, bench and the pytest suites are not collection content.
  git ls-files -z --cached --others --exclude-standard -- galaxy.yml meta plugins roles playbooks changelogs \
      README.md tests/config.yml | xargs -0 -I{} cp --parents -P {} "$work/"
  echo "== ansible-test sanity"
  (cd "$work" && git init -q && git add -A && \
      "$venv/bin/ansible-test" sanity --local --python 3.11 --color no) || status=1
}

run_pytest() {
  local args=("$@")
  set +e
  "$venv/bin/pytest" "${args[@]}"
  local rc=$?
  set -e
  [ $rc -eq 0 ] || status=1
}

case "$what" in
  unit) run_pytest tests/unit ;;
  integration) lab_up; run_pytest tests/integration ;;
  lint) run_lint ;;
  sanity) run_sanity ;;
  all)
    lab_up
    run_lint
    run_sanity
    run_pytest tests
    ;;
  *) echo "usage: scripts/test.sh [all|unit|integration|lint|sanity]" >&2; exit 2 ;;
esac
exit $status
