"""DR lab: two sites on one Docker host, the primary site's database streaming to the secondary site's.

    python -m lab.dr up     [--dir DIR] [--sync|--async] [--fresh]   # both sites up, DNS on the primary site
    python -m lab.dr down   [--dir DIR] [--purge]                    # remove both sites, their volumes, the wan
    python -m lab.dr status [--dir DIR]
    python -m lab.dr kill   SITE                                      # SIGKILL every container of a site
    python -m lab.dr writer --ledger FILE [--url URL]                 # commit rows until SIGTERM/SIGINT

Site ``site-a`` (project ops-runbooks-dr-a) starts as the primary: its database is the primary and its
application runs. Site ``site-b`` (ops-runbooks-dr-b) is the warm secondary: a streaming replica and the
application deployed with no replicas, its connection string still naming the primary site's database. The
application of each site is published on the site's own loopback address (site-a 127.0.1.1, site-b 127.0.2.1)
at port 58090, and the name app.lab.example in the DNS lab (lab/dns.py) points at the active site.

``--sync`` makes the replication synchronous (a commit returns once the secondary has flushed it), ``--async``
(the default) leaves it asynchronous. ``--fresh`` removes both sites first, so a drill starts from a known state.

The writer sends POST /items to the primary site's application as fast as it answers and appends the id of every
acknowledged (committed) item to the ledger, one per line, flushed: the drill counts how many of those are missing
on the new primary after a failover, which is the data lost, counted rather than estimated.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lab import compose, docker
from lab import dns as dns_lab

DEFAULT_DIR = Path(os.environ.get("OPS_RUNBOOKS_LAB_DIR", "/tmp/ops-runbooks-lab")) / "dr"
HERE = Path(__file__).resolve().parent
NETWORK = "ops-runbooks-dr-wan"
APP_PORT = 58090
PG_PORT = 58532
SLOT = "lab_replica"  # the replication slot and application_name the lab's postgres image uses
SHARED_SECRETS = ("db_admin_password", "db_app_password", "db_replication_password", "redis_password")


@dataclass(frozen=True)
class Site:
    name: str
    project: str
    ip: str

    def url(self) -> str:
        return f"http://{self.ip}:{APP_PORT}"

    def database_url(self) -> str:
        return f"postgresql://app@{self.name}-db:5432/app"


SITES = {
    "site-a": Site("site-a", "ops-runbooks-dr-a", "127.0.1.1"),
    "site-b": Site("site-b", "ops-runbooks-dr-b", "127.0.2.1"),
}
PRIMARY, SECONDARY = SITES["site-a"], SITES["site-b"]


def deployment(base: Path, site: Site) -> compose.Deployment:
    return compose.Deployment(Path(base) / site.name, project=site.project)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def render(base: Path, images: dict[str, str]) -> None:
    """Lay out both site directories. Shared secrets are generated once (the sites hold copies, as a secret store
    replicated between regions would); each site's connection string starts out naming the primary's database."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o700)
    shared = base / "secrets"
    for name in SHARED_SECRETS:
        if not (shared / name).exists():
            _write_private(shared / name, secrets.token_urlsafe(24))
    revision = images["APP_IMAGE"].rsplit(":", 1)[1]
    for site in SITES.values():
        d = base / site.name
        d.mkdir(mode=0o700, exist_ok=True)
        shutil.copyfile(HERE / "compose.yaml", d / "compose.yaml")
        for name in SHARED_SECRETS:
            _write_private(d / "secrets" / name, (shared / name).read_text())
        _write_private(d / "secrets" / "database_url", PRIMARY.database_url())
        primary = site is PRIMARY
        settings = {
            "SITE": site.name, "SITE_IP": site.ip, "APP_PORT": APP_PORT, "PG_PORT": PG_PORT,
            "APP_IMAGE": images["APP_IMAGE"], "APP_REVISION": revision, "APP_REPLICAS": 1 if primary else 0,
            "POSTGRES_IMAGE": images["POSTGRES_IMAGE"], "REDIS_IMAGE": images["REDIS_IMAGE"],
            "DB_ROLE": "primary" if primary else "replica", "DB_UPSTREAM": "" if primary else f"{PRIMARY.name}-db",
        }
        (d / ".env").write_text("# Written by `python -m lab.dr up`; read by docker compose.\n"
                                + "".join(f"{k}={v}\n" for k, v in settings.items()))


def _ensure_network() -> None:
    if docker.docker("network", "inspect", NETWORK, check=False).returncode != 0:
        docker.docker("network", "create", NETWORK)


def admin_conninfo(base: Path, site: Site) -> dict:
    return {"host": site.ip, "port": PG_PORT, "user": "runbook_admin", "dbname": "postgres",
            "password": (Path(base) / "secrets" / "db_admin_password").read_text().strip(), "connect_timeout": 3}


def _set_sync(base: Path, sync: bool, timeout: float = 60) -> None:
    import psycopg

    value = SLOT if sync else ""
    with psycopg.connect(**admin_conninfo(base, PRIMARY), autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{value}'")
        conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while True:  # the setting is in force, and the standby streams (sync means a commit then waits for it)
            row = conn.execute("SELECT current_setting('synchronous_standby_names'), "
                               "(SELECT sync_state FROM pg_stat_replication WHERE application_name = %s "
                               "AND state = 'streaming')", (SLOT,)).fetchone()
            if row[0] == value and row[1] == ("sync" if sync else "async"):
                return
            if time.monotonic() > deadline:
                raise docker.LabError(f"replication did not become {'sync' if sync else 'async'} within "
                                      f"{timeout}s: setting {row[0]!r}, standby state {row[1]!r}")
            time.sleep(0.2)


def point_dns_at(site: Site, base: Path = DEFAULT_DIR) -> None:
    """Point app.lab.example at ``site`` in the DNS lab (started when it is not running).

    The update key's secret is copied beside the other secrets (0600), where the lab-dr inventory reads it."""
    import dns.query
    import dns.tsigkeyring
    import dns.update

    lab = dns_lab.up()
    _write_private(Path(base) / "secrets" / "dns_tsig_secret", lab.key_secret)
    keyring = dns.tsigkeyring.from_text({lab.key_name: (lab.key_algorithm, lab.key_secret)})
    update = dns.update.UpdateMessage(lab.zone, keyring=keyring, keyname=lab.key_name)
    update.replace("app", 60, "A", site.ip)
    response = dns.query.tcp(update, lab.host, port=lab.port, timeout=5)
    if response.rcode() != 0:
        raise docker.LabError(f"DNS update of app.{lab.zone} refused: rcode {response.rcode()}")


def up(base: Path = DEFAULT_DIR, sync: bool = False, fresh: bool = False) -> dict:
    clock = compose._Clock()
    base = Path(base)
    with compose._locked():
        docker.install()
        docker.start()
        docker.ensure_compose()
        if fresh:
            _remove_sites(base)
        clock.lap("engine")
        images = compose.build_images()
        clock.lap("images")
        render(base, images)
        _ensure_network()
        for site in (PRIMARY, SECONDARY):
            d = deployment(base, site)
            try:
                d.compose("up", "--detach", "--wait", "--wait-timeout", "180", "--remove-orphans", timeout=300)
            except docker.LabError as exc:
                raise docker.LabError(f"{exc}\n\n{compose._diagnostics(d)}") from None
        clock.lap("sites up")
        _set_sync(base, sync)
        point_dns_at(PRIMARY, base)
        clock.lap("replication and DNS")
    print(f"lab.dr up: {clock}; replication {'synchronous' if sync else 'asynchronous'}")
    return {"sync": sync}


def _remove_sites(base: Path) -> None:
    for site in SITES.values():
        d = deployment(base, site)
        # A site directory may be gone while its project still runs: compose needs no files to remove a project.
        d.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", timeout=300)
    docker.docker("network", "rm", NETWORK, check=False)


def down(base: Path = DEFAULT_DIR, purge: bool = False) -> str:
    with compose._locked():
        if docker.answering():
            _remove_sites(Path(base))
        stopped = docker.stop()
        if purge and Path(base).exists():
            shutil.rmtree(base)
    return stopped


def kill(site: Site, base: Path = DEFAULT_DIR) -> None:
    """The site fails: every container gets SIGKILL at once (no clean shutdown), and Docker keeps them down."""
    deployment(base, site).compose("kill", "--signal", "SIGKILL")


def status(base: Path = DEFAULT_DIR) -> dict:
    result = {}
    for site in SITES.values():
        result[site.name] = [{"name": c["Name"], "state": c["State"], "health": c.get("Health") or "-"}
                             for c in deployment(base, site).containers()]
    return result


def writer(ledger: Path, url: str, stop_after: float | None = None) -> dict:
    """Commit items through the application until told to stop; every acknowledged id goes to ``ledger``."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    acknowledged = failed = 0
    started = time.monotonic()
    with open(ledger, "a", buffering=1) as out:
        while not stopping and (stop_after is None or time.monotonic() - started < stop_after):
            request = urllib.request.Request(f"{url}/items", data=json.dumps({"writer": acknowledged}).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    item_id = json.load(response)["id"]
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                failed += 1
                time.sleep(0.05)
                continue
            out.write(f"{item_id}\n")
            os.fsync(out.fileno())
            acknowledged += 1
    return {"acknowledged": acknowledged, "failed": failed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.dr")
    ap.add_argument("action", choices=["up", "down", "status", "kill", "writer"])
    ap.add_argument("site", nargs="?", choices=sorted(SITES))
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--sync", action="store_true", help="synchronous replication")
    mode.add_argument("--async", dest="sync", action="store_false", help="asynchronous replication (default)")
    ap.add_argument("--fresh", action="store_true", help="with up: remove both sites first")
    ap.add_argument("--purge", action="store_true", help="with down: delete the lab directory and its secrets")
    ap.add_argument("--ledger", type=Path, help="with writer: file to append acknowledged ids to")
    ap.add_argument("--url", default=PRIMARY.url(), help="with writer: the application to write through")
    args = ap.parse_args(argv)
    try:
        if args.action == "up":
            up(args.dir, sync=args.sync, fresh=args.fresh)
        elif args.action == "down":
            print(f"lab.dr down: both sites removed; {down(args.dir, args.purge)}")
        elif args.action == "status":
            print(json.dumps(status(args.dir), indent=2))
        elif args.action == "kill":
            if not args.site:
                ap.error("kill needs a SITE")
            kill(SITES[args.site], args.dir)
        else:
            if not args.ledger:
                ap.error("writer needs --ledger")
            print(json.dumps(writer(args.ledger, args.url)))
    except docker.LabError as exc:
        print(f"lab.dr {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
