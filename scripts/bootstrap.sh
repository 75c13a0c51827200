#!/usr/bin/env bash
# Prepare everything the tests and the lab need, idempotently:
#   - Debian packages (PostgreSQL 15 server binaries),
#   - a Python virtualenv with the pinned dependencies from pyproject.toml, cached outside the checkout
#     and keyed by the pins, so a warm run costs nothing.
# Prints the venv path on the last line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OPS_RUNBOOKS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ops-runbooks}
mkdir -p "$cache"

need_apt=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15 postgresql-client-15)
command -v runuser >/dev/null || need_apt+=(util-linux)
[ -x /usr/sbin/named ] && [ -x /usr/sbin/tsig-keygen ] || need_apt+=(bind9 bind9-utils)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v pebble >/dev/null || need_apt+=(pebble)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need_apt[@]}" >&2
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
pins=$("$python" - "$root/pyproject.toml" <<'PY'
import sys, tomllib
data = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(data["dependencies"] + data["optional-dependencies"]["test"]))
PY
)
key=$(printf '%s\n%s\n' "$("$python" -V 2>&1)" "$pins" | sha256sum | cut -c1-16)
venv="$cache/venv-$key"
if [ ! -x "$venv/bin/ansible-playbook" ] || [ ! -f "$venv/.complete" ]; then
  echo "bootstrap: creating $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check $pins >&2
  touch "$venv/.complete"
fi

# The Kubernetes lab's control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) is
# built from upstream sources through the Go module proxy, once per machine: cached under
# ~/.cache/ops-runbooks/k8s/<versions>, so only the first run pays (tens of minutes on 2 cores; see lab/k8s_build.py).
# OPS_RUNBOOKS_SKIP_K8S_BUILD=1 skips it, and so does a build already running elsewhere: `python -m lab.k8s up`
# builds (or waits for the running build) when the lab is first needed.
if [ -z "${OPS_RUNBOOKS_SKIP_K8S_BUILD:-}" ] && ! (cd "$root" && "$python" -m lab.k8s_build --print-bin >/dev/null); then
  echo "bootstrap: building the Kubernetes lab binaries (once per machine)" >&2
  (cd "$root" && "$python" -m lab.k8s_build --if-idle >&2)
fi

# ansible-test sanity downloads a pip bootstrap script; no download is possible here, so give it one
# that uses the interpreter's own ensurepip.
for v in 24_2 25_0 25_1 25_2; do
  f="$HOME/.ansible/test/cache/get_pip_${v}.py"
  if ! grep -q "get-pip-only" "$f" 2>/dev/null; then
    mkdir -p "$(dirname "$f")"
    cat > "$f" <<'PY'
# Stand-in for get-pip.py: ensurepip, then pip installs the requested pip (get-pip-only flags dropped).
import subprocess, sys
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel", "--disable-pip-version-check")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + args)
PY
  fi
done
echo "$venv"
