"""Build the Kubernetes lab's binaries from upstream sources through the Go module proxy, once per machine.

    python -m lab.k8s_build [--print-bin]

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok are built at the pinned versions below
into ``~/.cache/ops-runbooks/k8s/<key>/bin`` (``OPS_RUNBOOKS_K8S_CACHE`` moves the root). The key names every
version and the Go release, so a pin change builds a new set next to the old one and a finished set is never
rebuilt: a ``.complete`` marker is written only after every binary linked.

Each component gets its own throwaway Go module under ``<key>/src/<component>`` that requires the upstream
module at its pinned version. ``k8s.io/kubernetes`` refers to its staging modules (``k8s.io/api``,
``k8s.io/client-go``, ...) as ``v0.0.0`` with directory replaces that only work inside its own repository, so
the throwaway module replaces every staging module with its published ``v0.<minor>.<patch>`` release instead.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# kwok's own default behaviour (what kwokctl configures): nodes become Ready and renew their lease, pods become
# Running and Ready, Job pods complete, deleted pods go away. The kwok binary needs them as configuration.
KWOK_STAGES = ("node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
               "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml")


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        raise SystemExit("go not found: the Kubernetes lab is built from sources with the Go toolchain")
    return go


def go_release() -> str:
    """``go1.26`` from ``go version go1.26.8 linux/amd64``: patch releases do not invalidate the cache."""
    out = subprocess.run([_go(), "env", "GOVERSION"], check=True, capture_output=True, text=True).stdout.strip()
    return ".".join(out.split(".")[:2])


def cache_root() -> Path:
    return Path(os.environ.get("OPS_RUNBOOKS_K8S_CACHE", Path.home() / ".cache" / "ops-runbooks" / "k8s"))


def build_dir() -> Path:
    key = f"kubernetes-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}_{go_release()}"
    return cache_root() / key


def bin_dir() -> Path:
    return build_dir() / "bin"


def is_built() -> bool:
    return (build_dir() / ".complete").exists() and all((bin_dir() / b).exists() for b in BINARIES)


def kwok_stages() -> Path:
    """kwok's default stages in one multi-document YAML file next to the binaries, copied from the kwok module
    (fetched through the module proxy when the module cache was cleaned since the build)."""
    path = build_dir() / "kwok-stages.yaml"
    if not path.exists():
        out = subprocess.run([_go(), "mod", "download", "-json", f"sigs.k8s.io/kwok@{KWOK_VERSION}"], env=_env(),
                             capture_output=True, text=True, cwd=cache_root())
        if out.returncode != 0:
            raise SystemExit(f"go mod download sigs.k8s.io/kwok@{KWOK_VERSION} failed: {out.stdout}{out.stderr}")
        source = Path(json.loads(out.stdout)["Dir"]) / "kustomize" / "stage"
        docs = [(source / stage).read_text().strip() for stage in KWOK_STAGES]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n---\n".join(docs) + "\n")
        tmp.replace(path)
    return path


def staging_version(kubernetes_version: str = KUBERNETES_VERSION) -> str:
    return "v0." + kubernetes_version.removeprefix("v1.")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Only the module proxy is reachable; no VCS fallback, and the checksum database is answered by the proxy.
    env.setdefault("GOPROXY", "https://proxy.golang.org")
    env["GOFLAGS"] = " ".join(filter(None, [env.get("GOFLAGS", ""), "-buildvcs=false", "-trimpath", "-p=2"]))
    env["CGO_ENABLED"] = "0"
    return env


def _run(cmd: list[str], cwd: Path, log) -> None:
    log.write(f"$ {' '.join(cmd)}   (in {cwd})\n")
    log.flush()
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    log.write(f"  -> exit {proc.returncode} after {time.monotonic() - started:.0f}s\n")
    log.flush()
    if proc.returncode != 0:
        raise SystemExit(f"k8s lab build failed: {' '.join(cmd)} (exit {proc.returncode}); see {log.name}")


def _staging_modules(log) -> list[str]:
    """The staging modules ``k8s.io/kubernetes`` replaces with directories, read from its published go.mod."""
    out = subprocess.run([_go(), "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
                         env=_env(), capture_output=True, text=True, cwd=cache_root())
    if out.returncode != 0:
        log.write(out.stdout + out.stderr)
        raise SystemExit(f"go mod download k8s.io/kubernetes@{KUBERNETES_VERSION} failed: {out.stdout}{out.stderr}")
    gomod = Path(json.loads(out.stdout)["GoMod"]).read_text()
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", gomod, re.M)))


def _module(src: Path, name: str, requires: dict[str, str], replaces: dict[str, str] | None = None) -> None:
    src.mkdir(parents=True, exist_ok=True)
    lines = [f"module ops-runbooks-lab/{name}", "", f"go {go_release().removeprefix('go')}", ""]
    lines += [f"require {mod} {ver}" for mod, ver in requires.items()]
    for mod, ver in (replaces or {}).items():
        lines.append(f"replace {mod} => {mod} {ver}")
    (src / "go.mod").write_text("\n".join(lines) + "\n")


def build(log_path: Path | None = None, wait: bool = True) -> Path | None:
    """Build every binary unless the cache already holds them; returns the bin directory.

    Two runs starting on a fresh machine at once: the second waits for the first one's build, or with
    ``wait=False`` returns None at once."""
    if is_built():
        return bin_dir()
    root = build_dir()
    (root / "bin").mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return None
        if is_built():
            return bin_dir()
        return _build(root, log_path or root / "build.log")


def _build(root: Path, log_path: Path) -> Path:
    started = time.monotonic()
    with open(log_path, "a") as log:
        log.write(f"building into {root} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
        go, out = _go(), str(root / "bin")
        staging = _staging_modules(log)
        version_flags = " ".join([
            f"-X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}",
            "-X k8s.io/component-base/version.gitMajor=1",
            f"-X k8s.io/component-base/version.gitMinor={KUBERNETES_VERSION.split('.')[1]}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
        ])

        src = root / "src" / "kubernetes"
        _module(src, "kubernetes", {"k8s.io/kubernetes": KUBERNETES_VERSION},
                {m: staging_version() for m in staging})
        commands = [f"k8s.io/kubernetes/cmd/{c}" for c in ("kube-apiserver", "kube-controller-manager",
                                                           "kube-scheduler")]
        _run([go, "get", *(f"{c}@{KUBERNETES_VERSION}" for c in commands)], src, log)
        _run([go, "build", "-ldflags", f"-s -w {version_flags}", "-o", out, *commands], src, log)

        src = root / "src" / "etcd"
        _module(src, "etcd", {"go.etcd.io/etcd/server/v3": ETCD_VERSION})
        _run([go, "get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], src, log)
        _run([go, "build", "-ldflags", "-s -w", "-o", str(root / "bin" / "etcd"), "go.etcd.io/etcd/server/v3"],
             src, log)

        src = root / "src" / "kwok"
        _module(src, "kwok", {"sigs.k8s.io/kwok": KWOK_VERSION})
        _run([go, "get", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"], src, log)
        _run([go, "build", "-ldflags", "-s -w",
              "-o", str(root / "bin" / "kwok"), "sigs.k8s.io/kwok/cmd/kwok"], src, log)

        kwok_stages()
        missing = [b for b in BINARIES if not (root / "bin" / b).exists()]
        if missing:
            raise SystemExit(f"k8s lab build finished without {', '.join(missing)}; see {log_path}")
        elapsed = time.monotonic() - started
        (root / ".complete").write_text(json.dumps({"seconds": round(elapsed), "built_at": time.time()}) + "\n")
        log.write(f"complete after {elapsed:.0f}s\n")
    return root / "bin"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.k8s_build")
    ap.add_argument("--print-bin", action="store_true", help="print the bin directory and exit 0 when built")
    ap.add_argument("--if-idle", action="store_true", help="return at once when another process is building")
    args = ap.parse_args(argv)
    if args.print_bin:
        print(bin_dir())
        return 0 if is_built() else 1
    cache_root().mkdir(parents=True, exist_ok=True)
    if is_built():
        print(f"k8s lab binaries already built in {bin_dir()}")
        return 0
    started = time.monotonic()
    path = build(wait=not args.if_idle)
    if path is None:
        print(f"k8s lab binaries are being built by another process; see {build_dir() / 'build.log'}")
        return 0
    print(f"k8s lab binaries built in {path} after {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
