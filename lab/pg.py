"""PostgreSQL lab: a primary and a streaming replica on loopback, data under a directory the caller owns.

    python -m lab.pg up    [--dir DIR] [--primary-port N] [--replica-port N] [--sync]
    python -m lab.pg down  [--dir DIR] [--purge]
    python -m lab.pg status [--dir DIR]
    python -m lab.pg env   [--dir DIR]      # shell exports for the connection settings

The same functions are imported by tests that need a disposable pair (promotion, failover) and by the
DR drill. Everything is idempotent: `up` on a running pair only checks it, `down` on a stopped one is a no-op.
Server processes run as the `postgres` user when called as root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lab._daemon import alive

DEFAULT_DIR = Path(os.environ.get("OPS_RUNBOOKS_LAB_DIR", "/tmp/ops-runbooks-lab")) / "pg"
ADMIN_USER = "runbook_admin"
REPLICATION_USER = "replicator"
SLOT = "lab_replica"


def bindir() -> Path:
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise SystemExit("PostgreSQL server binaries not found; run scripts/bootstrap.sh")
    return Path(found[-1]).parent


def _as_postgres(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


@dataclass
class Server:
    name: str
    host: str
    port: int
    datadir: str
    socket_dir: str

    @property
    def logfile(self) -> str:
        return str(Path(self.datadir).parent / f"{self.name}.log")

    def running(self) -> bool:
        pid = Path(self.datadir) / "postmaster.pid"
        if not pid.exists():
            return False
        try:
            return alive(int(pid.read_text().split()[0]))
        except ValueError:
            return False

    def start(self) -> None:
        if not self.running():
            # A killed postmaster left its lock file, and its pid may linger as a zombie that PostgreSQL's own
            # check would take for a live server.
            # The same goes for its socket lock file.
            (Path(self.datadir) / "postmaster.pid").unlink(missing_ok=True)
            for stale in (f".s.PGSQL.{self.port}.lock", f".s.PGSQL.{self.port}"):
                (Path(self.socket_dir) / stale).unlink(missing_ok=True)
            _as_postgres([str(bindir() / "pg_ctl"), "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            _as_postgres([str(bindir() / "pg_ctl"), "-D", self.datadir, "-m", mode, "-w", "-t", "60", "stop"])

    def kill(self) -> None:
        """Simulate a crash of the whole server (SIGKILL to the postmaster)."""
        pid = Path(self.datadir) / "postmaster.pid"
        if pid.exists():
            try:
                os.kill(int(pid.read_text().split()[0]), 9)
            except ProcessLookupError:
                pass


@dataclass
class Lab:
    base: str
    primary: Server
    replica: Server
    admin_user: str
    admin_password: str
    replication_password: str
    synchronous: bool

    @property
    def state_file(self) -> Path:
        return Path(self.base) / "lab.json"

    def save(self) -> None:
        self.state_file.write_text(json.dumps(asdict(self), indent=2))
        self.state_file.chmod(0o600)

    @classmethod
    def load(cls, base: Path = DEFAULT_DIR) -> Lab | None:
        f = Path(base) / "lab.json"
        if not f.exists():
            return None
        data = json.loads(f.read_text())
        data["primary"] = Server(**data["primary"])
        data["replica"] = Server(**data["replica"])
        return cls(**data)

    def dsn(self, server: Server, dbname: str = "postgres") -> str:
        return (f"host={server.host} port={server.port} dbname={dbname} user={self.admin_user} "
                f"password={self.admin_password} connect_timeout=5")

    def env(self) -> dict[str, str]:
        return {
            "OPS_PG_HOST": self.primary.host,
            "OPS_PG_PORT": str(self.primary.port),
            "OPS_PG_REPLICA_PORT": str(self.replica.port),
            "OPS_PG_USER": self.admin_user,
            "OPS_PG_PASSWORD": self.admin_password,
            "OPS_PG_SOCKET_DIR": self.primary.socket_dir,
        }


def _psql(server: Server, sql: str, dbname: str = "postgres") -> str:
    out = _as_postgres([str(bindir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-h", server.socket_dir, "-p", str(server.port), "-d", dbname, "-c", sql])
    return out.stdout.strip()


def _write_conf(server: Server, extra: dict[str, str]) -> None:
    settings = {
        "listen_addresses": f"'{server.host}'",
        "port": str(server.port),
        "unix_socket_directories": f"'{server.socket_dir}'",
        "wal_level": "replica",
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "hot_standby": "on",
        "wal_keep_size": "'256MB'",
        "shared_preload_libraries": "'pg_stat_statements'",
        "pg_stat_statements.track": "all",
        "track_io_timing": "on",
        "track_commit_timestamp": "on",
        "password_encryption": "'scram-sha-256'",
        "fsync": "off",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "max_connections": "100",
        "shared_buffers": "'128MB'",
        "log_line_prefix": "'%m [%p] %u@%d '",
        "logging_collector": "off",
    }
    settings.update(extra)
    conf = Path(server.datadir) / "postgresql.auto.conf"
    lines = [line for line in conf.read_text().splitlines() if line.startswith("primary_")] if conf.exists() else []
    lines += [f"{k} = {v}" for k, v in settings.items()]
    conf.write_text("\n".join(lines) + "\n")
    hba = Path(server.datadir) / "pg_hba.conf"
    hba.write_text(
        "local all postgres peer\n"
        "local all all scram-sha-256\n"
        f"host all all {server.host}/32 scram-sha-256\n"
        f"host replication {REPLICATION_USER} {server.host}/32 scram-sha-256\n"
    )


def up(base: Path = DEFAULT_DIR, primary_port: int = 55432, replica_port: int = 55433,
       synchronous: bool = False, host: str = "127.0.0.1") -> Lab:
    base = Path(base)
    lab = Lab.load(base)
    if lab is None:
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True)
        for p in (base, base.parent):
            _chown(p)
        sock = base / "sock"
        sock.mkdir()
        _chown(sock)
        lab = Lab(
            base=str(base),
            primary=Server("primary", host, primary_port, str(base / "primary"), str(sock)),
            replica=Server("replica", host, replica_port, str(base / "replica"), str(sock)),
            admin_user=ADMIN_USER,
            admin_password=secrets.token_urlsafe(18),
            replication_password=secrets.token_urlsafe(18),
            synchronous=synchronous,
        )
        _init_primary(lab)
        _init_replica(lab)
        lab.save()
        _chown(lab.state_file)
    lab.primary.start()
    lab.replica.start()
    wait_streaming(lab)
    return lab


def _init_primary(lab: Lab) -> None:
    p = lab.primary
    _as_postgres([str(bindir() / "initdb"), "-D", p.datadir, "-U", "postgres", "--auth-local=peer",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--data-checksums"])
    extra = {}
    if lab.synchronous:
        extra = {"synchronous_standby_names": "'FIRST 1 (lab_replica)'"}
    _write_conf(p, extra)
    p.start()
    _psql(p, f"CREATE ROLE {ADMIN_USER} LOGIN SUPERUSER PASSWORD '{lab.admin_password}'")
    _psql(p, f"CREATE ROLE {REPLICATION_USER} LOGIN REPLICATION PASSWORD '{lab.replication_password}'")
    _psql(p, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    _psql(p, f"SELECT pg_create_physical_replication_slot('{SLOT}')")


def _init_replica(lab: Lab) -> None:
    p, r = lab.primary, lab.replica
    env = dict(os.environ, PGPASSWORD=lab.replication_password)
    _as_postgres([str(bindir() / "pg_basebackup"), "-h", p.host, "-p", str(p.port), "-U", REPLICATION_USER,
                  "-D", r.datadir, "-X", "stream", "-S", SLOT, "-R", "-c", "fast"], env=env)
    primary_conninfo = (f"'host={p.host} port={p.port} user={REPLICATION_USER} "
                        f"password={lab.replication_password} application_name=lab_replica'")
    _write_conf(r, {"primary_conninfo": primary_conninfo, "primary_slot_name": f"'{SLOT}'"})
    (Path(r.datadir) / "standby.signal").touch()
    _chown(Path(r.datadir) / "standby.signal")


def wait_streaming(lab: Lab, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _psql(lab.primary, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") != "0":
                return
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"replica on port {lab.replica.port} did not start streaming within {timeout}s; "
                     f"see {lab.replica.logfile}")


def down(base: Path = DEFAULT_DIR, purge: bool = False) -> None:
    lab = Lab.load(base)
    if lab is not None:
        for server in (lab.replica, lab.primary):
            try:
                server.stop("immediate" if purge else "fast")
            except subprocess.CalledProcessError:
                server.kill()
    if purge and Path(base).exists():
        shutil.rmtree(base)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.pg")
    ap.add_argument("action", choices=["up", "down", "status", "env"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--primary-port", type=int, default=55432)
    ap.add_argument("--replica-port", type=int, default=55433)
    ap.add_argument("--sync", action="store_true", help="synchronous replication (no committed row lost)")
    ap.add_argument("--purge", action="store_true", help="with down: delete the data directories too")
    args = ap.parse_args(argv)
    if args.action == "up":
        lab = up(args.dir, args.primary_port, args.replica_port, args.sync)
        print(f"primary 127.0.0.1:{lab.primary.port}, replica 127.0.0.1:{lab.replica.port} streaming; "
              f"state in {lab.state_file}")
    elif args.action == "down":
        down(args.dir, args.purge)
    elif args.action == "status":
        lab = Lab.load(args.dir)
        if lab is None:
            print("not created")
            return 1
        for s in (lab.primary, lab.replica):
            print(f"{s.name}: port {s.port} {'running' if s.running() else 'stopped'}")
    elif args.action == "env":
        lab = Lab.load(args.dir)
        if lab is None:
            return 1
        for k, v in lab.env().items():
            print(f"export {k}={v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
