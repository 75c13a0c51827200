"""Compose lab: the single-host deployment the Compose runbooks operate, built and run for real.

    python -m lab.compose up     [--dir DIR]            # install/start what is missing, build, up --wait
    python -m lab.compose down   [--dir DIR] [--purge]  # remove containers, networks, volumes; stop our dockerd
    python -m lab.compose status [--dir DIR]            # exit 0 when every container is running and healthy

The deployment directory (default /tmp/ops-runbooks-lab/compose) is laid out like one on a real host:
compose.yaml, .env (images, revisions, replicas, ports), secrets/ (generated once, 0600), config/ (non-secret values
the app reads beside them, such as its database login role) and nginx/ (bind-mounted
into the nginx container; active_slot.conf is runtime state owned by traffic_switch, so `up` never overwrites it).
`up` is idempotent and `down --purge` also deletes the directory and its secrets.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab import docker

HERE = Path(__file__).resolve().parent
APP_CONTEXT = HERE.parent / "app"
DEFAULT_DIR = Path(os.environ.get("OPS_RUNBOOKS_LAB_DIR", "/tmp/ops-runbooks-lab")) / "compose"
PROJECT = "ops-runbooks-lab"
BIND = "127.0.0.1"
PORTS = {"NGINX_PORT": 58080, "BLUE_PORT": 58081, "GREEN_PORT": 58082,
         "PG_PRIMARY_PORT": 58432, "PG_REPLICA_PORT": 58433, "REDIS_PORT": 58379, "NGINX_TLS_PORT": 55443}
SECRETS = ("db_admin_password", "db_app_password", "db_replication_password", "redis_password", "jwt_signing_key")
# Created once with these contents, then owned by secret_rotate: the previous JWT key (none yet) and the login role
# the app uses (`app` until the first rotation moves it to app_a/app_b).
EMPTY_SECRETS = ("jwt_signing_key_previous",)
CONFIGS = {"db_app_user": "app"}
# What the application needs, in the debootstrap base every image starts from.
BASE_PACKAGES = ["python3", "python3-psycopg2", "python3-redis"]
IMAGES = {  # .env variable -> (repository, build context)
    "APP_IMAGE": ("ops-runbooks/lab-app", APP_CONTEXT),
    "NGINX_IMAGE": ("ops-runbooks/lab-nginx", HERE / "images" / "nginx"),
    "POSTGRES_IMAGE": ("ops-runbooks/lab-postgres", HERE / "images" / "postgres"),
    "REDIS_IMAGE": ("ops-runbooks/lab-redis", HERE / "images" / "redis"),
}


@dataclass
class Deployment:
    dir: Path
    project: str = PROJECT

    def compose(self, *args: str, **kw):
        files = ["-f", str(self.dir / "compose.yaml")] if (self.dir / "compose.yaml").exists() else []
        return docker.docker("compose", "-p", self.project, "--project-directory", str(self.dir), *files, *args,
                             **kw)

    def secret(self, name: str) -> str:
        return (self.dir / "secrets" / name).read_text().strip()

    def env(self) -> dict[str, str]:
        lines = (self.dir / ".env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))

    def url(self, port_name: str) -> str:
        return f"http://{BIND}:{PORTS[port_name]}"

    def containers(self) -> list[dict]:
        out = self.compose("ps", "--all", "--format", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@contextmanager
def _locked():
    # Parallel test workers may all call `up`; one builds and starts, the others then find it running.
    docker.ENGINE_DIR.mkdir(parents=True, exist_ok=True)
    with open(docker.ENGINE_DIR / "compose-lab.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_images() -> dict[str, str]:
    base = docker.base_image(BASE_PACKAGES)
    with ThreadPoolExecutor(len(IMAGES)) as pool:
        futures = {var: pool.submit(docker.build_image, repo, ctx, base) for var, (repo, ctx) in IMAGES.items()}
        return {var: future.result() for var, future in futures.items()}


def _write_secret(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(24))


TLS_NAMES = ("www.lab.example",)  # in the DNS lab's zone, so cert_renew can prove it with dns-01 against lab.acme


def write_self_signed(directory: Path, days: int = 10, names: tuple[str, ...] = TLS_NAMES) -> None:
    """nginx's first certificate: self-signed for ``names``, valid ``days`` days (so a renewal is due), the key 0600."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    key_file = directory / "key.pem"
    key_file.unlink(missing_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def render(base: Path, images: dict[str, str]) -> bool:
    """Lay out the deployment directory; True when nginx's site.conf changed (a running nginx needs a reload).

    Secrets and the active slot are created once and then kept.
    """
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o700)
    shutil.copyfile(HERE / "compose.yaml", base / "compose.yaml")
    (base / "nginx").mkdir(exist_ok=True)
    site = base / "nginx" / "site.conf"
    site_changed = not site.exists() or site.read_bytes() != (HERE / "nginx" / "site.conf").read_bytes()
    shutil.copyfile(HERE / "nginx" / "site.conf", site)
    if not (base / "nginx" / "active_slot.conf").exists():
        shutil.copyfile(HERE / "nginx" / "active_slot.conf", base / "nginx" / "active_slot.conf")
    if not (base / "nginx" / "tls" / "cert.pem").exists():  # runtime state owned by cert_renew afterwards
        write_self_signed(base / "nginx" / "tls")
    (base / "secrets").mkdir(mode=0o700, exist_ok=True)
    for name in SECRETS:
        if not (base / "secrets" / name).exists():
            _write_secret(base / "secrets" / name)
    for name in EMPTY_SECRETS:
        if not (base / "secrets" / name).exists():
            os.close(os.open(base / "secrets" / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    (base / "config").mkdir(exist_ok=True)
    for name, value in CONFIGS.items():
        if not (base / "config" / name).exists():
            (base / "config" / name).write_text(f"{value}\n")
    app = images["APP_IMAGE"]
    revision = app.rsplit(":", 1)[1]
    settings = {
        "APP_BLUE_IMAGE": app, "APP_BLUE_REVISION": revision, "APP_BLUE_REPLICAS": 2,
        "APP_GREEN_IMAGE": app, "APP_GREEN_REVISION": revision, "APP_GREEN_REPLICAS": 1,
        "NGINX_IMAGE": images["NGINX_IMAGE"], "POSTGRES_IMAGE": images["POSTGRES_IMAGE"],
        "REDIS_IMAGE": images["REDIS_IMAGE"], "LAB_BIND": BIND, **PORTS,
    }
    (base / ".env").write_text("# Written by `python -m lab.compose up`; read by docker compose.\n"
                               + "".join(f"{k}={v}\n" for k, v in settings.items()))
    return site_changed


def up(base: Path = DEFAULT_DIR) -> Deployment:
    clock = _Clock()
    with _locked():
        installed = docker.install()
        started = docker.start()
        compose_version = docker.ensure_compose()
        clock.lap("engine")
        images = build_images()
        clock.lap("images")
        deployment = Deployment(Path(base))
        site_changed = render(deployment.dir, images)
        try:
            deployment.compose("up", "--detach", "--wait", "--wait-timeout", "180", "--remove-orphans", timeout=300)
            if site_changed:  # the file is bind-mounted: a container that was already running has the old one
                deployment.compose("exec", "-T", "nginx", "nginx", "-s", "reload")
        except docker.LabError as exc:
            raise docker.LabError(f"{exc}\n\n{_diagnostics(deployment)}") from None
        clock.lap("compose up")
    print(f"lab.compose up: {clock}" + (f"; installed {', '.join(installed)}" if installed else "")
          + f"; dockerd {'started by the lab' if started else 'already running'}; compose {compose_version}")
    return deployment


def _diagnostics(deployment: Deployment) -> str:
    ps = deployment.compose("ps", "--all", check=False).stdout
    logs = deployment.compose("logs", "--no-color", "--tail", "15", check=False).stdout
    return f"docker compose ps --all:\n{ps}\nlast log lines:\n{logs}"


def down(base: Path = DEFAULT_DIR, purge: bool = False) -> str:
    with _locked():
        if docker.answering():
            Deployment(Path(base)).compose("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=300)
        stopped = docker.stop()
        if purge and Path(base).exists():
            shutil.rmtree(base)
    return stopped


def endpoints(deployment: Deployment) -> str:
    d = deployment.dir
    return "\n".join([
        f"public    {deployment.url('NGINX_PORT')}  (slot named in {d}/nginx/active_slot.conf)",
        f"tls       https://{BIND}:{PORTS['NGINX_TLS_PORT']}  ({', '.join(TLS_NAMES)}, pair in {d}/nginx/tls)",
        f"blue      {deployment.url('BLUE_PORT')}",
        f"green     {deployment.url('GREEN_PORT')}",
        f"postgres  primary {BIND}:{PORTS['PG_PRIMARY_PORT']}, replica {BIND}:{PORTS['PG_REPLICA_PORT']}; "
        f"user runbook_admin, password in {d}/secrets/db_admin_password",
        f"redis     {BIND}:{PORTS['REDIS_PORT']}; password in {d}/secrets/redis_password",
        f"project   {deployment.project} in {d}",
    ])


class _Clock:
    def __init__(self):
        self.start = self.last = time.monotonic()
        self.laps: list[str] = []

    def lap(self, what: str) -> None:
        now = time.monotonic()
        self.laps.append(f"{what} {now - self.last:.1f}s")
        self.last = now

    def __str__(self) -> str:
        return f"{', '.join(self.laps)}; total {self.last - self.start:.1f}s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.compose")
    ap.add_argument("action", choices=["up", "down", "status"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--purge", action="store_true", help="with down: delete the deployment directory and secrets")
    args = ap.parse_args(argv)
    try:
        if args.action == "up":
            print(endpoints(up(args.dir)))
        elif args.action == "down":
            print(f"lab.compose down: project {PROJECT} removed; {down(args.dir, args.purge)}")
        else:
            if not docker.answering():
                print("docker engine not answering")
                return 1
            containers = Deployment(args.dir).containers()
            for c in containers:
                print(f"{c['Name']:40} {c['State']:10} {c.get('Health') or '-'}")
            healthy = containers and all(c["State"] == "running" and c.get("Health") in ("", "healthy")
                                         for c in containers)
            return 0 if healthy else 1
    except docker.LabError as exc:
        print(f"lab.compose {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
