"""Redis lab: one Redis 7 server on loopback with a password, data under a directory the caller owns.

    python -m lab.redis up     [--dir DIR] [--port N]
    python -m lab.redis down   [--dir DIR] [--purge]
    python -m lab.redis status [--dir DIR]
    python -m lab.redis env    [--dir DIR]      # shell exports for the connection settings

The default user needs the password; an ACL user (``runbook_ops``) has a password of its own. Idempotent
like lab/pg.py: ``up`` on a running server only checks it, ``down`` on a stopped one is a no-op. Nothing is
persisted to disk (no RDB, no AOF): the lab is for checks, not data.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab._daemon import DaemonState

DEFAULT_DIR = Path(os.environ.get("OPS_RUNBOOKS_LAB_DIR", "/tmp/ops-runbooks-lab")) / "redis"
DEFAULT_PORT = 56379
ACL_USER = "runbook_ops"


def server_binary() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise SystemExit("redis-server not found; run scripts/bootstrap.sh (Debian package redis-server)")
    return found


@dataclass
class RedisLab(DaemonState):
    DAEMON = "redis"

    base: str
    host: str
    port: int
    password: str
    acl_user: str
    acl_password: str

    @property
    def conf(self) -> Path:
        return Path(self.base) / "redis.conf"

    def ping(self) -> bool:
        """PING as the default user; the password goes through the environment, never on argv."""
        try:
            out = subprocess.run(["redis-cli", "-h", self.host, "-p", str(self.port), "--no-auth-warning", "ping"],
                                 env=dict(os.environ, REDISCLI_AUTH=self.password), capture_output=True, text=True,
                                 timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.stdout.strip() == "PONG"

    def env(self) -> dict[str, str]:
        return {"OPS_REDIS_HOST": self.host, "OPS_REDIS_PORT": str(self.port), "OPS_REDIS_PASSWORD": self.password,
                "OPS_REDIS_ACL_USER": self.acl_user, "OPS_REDIS_ACL_PASSWORD": self.acl_password}


def _write_conf(lab: RedisLab) -> None:
    lab.conf.write_text("\n".join([
        f"bind {lab.host}",
        f"port {lab.port}",
        "protected-mode yes",
        "daemonize yes",
        f"pidfile {lab.pidfile}",
        f"logfile {lab.logfile}",
        f"dir {lab.base}",
        'save ""',
        "appendonly no",
        f"requirepass {lab.password}",
        f"user {ACL_USER} on >{lab.acl_password} ~* &* +@all",
        "",
    ]))
    lab.conf.chmod(0o600)


def up(base: Path = DEFAULT_DIR, port: int = DEFAULT_PORT, host: str = "127.0.0.1", timeout: float = 30) -> RedisLab:
    base = Path(base)
    lab = RedisLab.load(base)
    if lab is None:
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True, mode=0o700)
        lab = RedisLab(base=str(base), host=host, port=port, password=secrets.token_urlsafe(18),
                       acl_user=ACL_USER, acl_password=secrets.token_urlsafe(18))
        _write_conf(lab)
        lab.save()
    if not lab.running():
        subprocess.run([server_binary(), str(lab.conf)], check=True, capture_output=True, text=True)
    deadline = time.monotonic() + timeout
    while not lab.ping():
        if time.monotonic() > deadline:
            raise SystemExit(f"redis on {lab.host}:{lab.port} did not answer PING within {timeout}s; "
                             f"see {lab.logfile}")
        time.sleep(0.1)
    return lab


def down(base: Path = DEFAULT_DIR, purge: bool = False, timeout: float = 30) -> None:
    RedisLab.down(base, purge, timeout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.redis")
    ap.add_argument("action", choices=["up", "down", "status", "env"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--purge", action="store_true", help="with down: delete the directory too")
    args = ap.parse_args(argv)
    lab = RedisLab.load(args.dir)
    if args.action == "up":
        lab = up(args.dir, args.port)
        print(f"redis {lab.host}:{lab.port} answering; state in {lab.state_file}")
    elif args.action == "down":
        down(args.dir, args.purge)
    elif args.action == "status":
        if lab is None:
            print("not created")
            return 1
        print(f"redis: port {lab.port} {'running' if lab.running() else 'stopped'}")
    elif args.action == "env":
        if lab is None:
            return 1
        for k, v in lab.env().items():
            print(f"export {k}={v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
