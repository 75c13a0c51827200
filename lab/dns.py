"""DNS lab: one authoritative BIND 9 server on loopback that accepts RFC 2136 updates signed with TSIG.

    python -m lab.dns up     [--dir DIR] [--port N]
    python -m lab.dns down   [--dir DIR] [--purge]
    python -m lab.dns status [--dir DIR]
    python -m lab.dns env    [--dir DIR]      # shell exports for the server and the update key

The zone ``lab.example.`` holds ``app.lab.example.``, the name the DR drill switches between sites. Two TSIG
keys are generated at the first start (tsig-keygen) and kept 0600 in the state directory: ``ops-runbooks-lab``
may update the zone, ``ops-runbooks-readonly`` is known to the server but not allowed to (so tests can show a
refusal). Idempotent like lab/pg.py: ``up`` on a running server only checks it, ``down`` on a stopped one is a
no-op; updates survive a restart (BIND keeps them in the zone's journal). named drops root for ``bind``.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab._daemon import DaemonState

DEFAULT_DIR = Path(os.environ.get("OPS_RUNBOOKS_LAB_DIR", "/tmp/ops-runbooks-lab")) / "dns"
DEFAULT_PORT = 55353
ZONE = "lab.example."
APP_RECORD = f"app.{ZONE}"
UPDATE_KEY = "ops-runbooks-lab"
READONLY_KEY = "ops-runbooks-readonly"
ALGORITHM = "hmac-sha256"
RUN_AS = "bind"


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if not found:
        raise SystemExit(f"{name} not found; run scripts/bootstrap.sh (Debian packages bind9, bind9-utils)")
    return found


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam(RUN_AS)
        os.chown(path, pw.pw_uid, pw.pw_gid)


@dataclass
class DnsLab(DaemonState):
    DAEMON = "named"

    base: str
    host: str
    port: int
    zone: str
    key_name: str
    key_secret: str
    key_algorithm: str
    readonly_key_name: str
    readonly_key_secret: str

    @property
    def conf(self) -> Path:
        return Path(self.base) / "named.conf"

    def serial(self) -> int | None:
        """The zone's SOA serial from the server over TCP, or None when it does not answer."""
        import dns.exception
        import dns.message
        import dns.query

        try:
            answer = dns.query.tcp(dns.message.make_query(self.zone, "SOA"), self.host, port=self.port, timeout=2)
        except (OSError, dns.exception.DNSException):
            return None
        return answer.answer[0][0].serial if answer.answer else None

    def env(self) -> dict[str, str]:
        return {"OPS_DNS_SERVER": self.host, "OPS_DNS_PORT": str(self.port), "OPS_DNS_ZONE": self.zone,
                "OPS_DNS_KEY_NAME": self.key_name, "OPS_DNS_KEY_SECRET": self.key_secret,
                "OPS_DNS_KEY_ALGORITHM": self.key_algorithm}


def _keygen(name: str) -> tuple[str, str]:
    """(named.conf key clause, secret) from tsig-keygen; the secret never goes on a command line."""
    clause = subprocess.run([_binary("tsig-keygen"), "-a", ALGORITHM, name], check=True, capture_output=True,
                            text=True).stdout
    return clause, re.search(r'secret "([^"]+)"', clause).group(1)


def _write_files(lab: DnsLab, keys: str, app_address: str) -> None:
    base = Path(lab.base)
    key_file = base / "tsig.key"
    key_file.write_text(keys)
    key_file.chmod(0o600)
    lab.conf.write_text(f"""\
include "{key_file}";
options {{
    directory "{base}";
    pid-file "{lab.pidfile}";
    session-keyfile "{base}/session.key";
    managed-keys-directory "{base}";
    listen-on port {lab.port} {{ {lab.host}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    dnssec-validation no;
    allow-query {{ any; }};
    allow-transfer {{ none; }};
}};
controls {{ }};
logging {{
    channel lab {{ file "{lab.logfile}"; severity info; print-time yes; }};
    category default {{ lab; }};
    category update {{ lab; }};
    category update-security {{ lab; }};
}};
zone "{lab.zone}" {{
    type primary;
    file "{lab.zone}zone";
    allow-update {{ key "{lab.key_name}"; }};
}};
""")
    (base / f"{lab.zone}zone").write_text(f"""\
$TTL 300
@    IN SOA ns.{lab.zone} hostmaster.{lab.zone} 1 60 30 86400 60
@    IN NS  ns.{lab.zone}
ns   IN A   {lab.host}
app  IN A   {app_address}
""")
    for path in base.iterdir():
        _chown(path)


def up(base: Path = DEFAULT_DIR, port: int = DEFAULT_PORT, host: str = "127.0.0.1", app_address: str = "127.0.0.1",
       timeout: float = 30) -> DnsLab:
    base = Path(base)
    lab = DnsLab.load(base)
    if lab is None:
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True, mode=0o700)
        _chown(base)
        update_clause, update_secret = _keygen(UPDATE_KEY)
        readonly_clause, readonly_secret = _keygen(READONLY_KEY)
        lab = DnsLab(base=str(base), host=host, port=port, zone=ZONE, key_name=UPDATE_KEY, key_secret=update_secret,
                     key_algorithm=ALGORITHM, readonly_key_name=READONLY_KEY, readonly_key_secret=readonly_secret)
        _write_files(lab, update_clause + readonly_clause, app_address)
        subprocess.run([_binary("named-checkconf"), "-z", str(lab.conf)], check=True, capture_output=True, text=True)
        lab.save()
    if not lab.running():
        user = ["-u", RUN_AS] if os.geteuid() == 0 else []
        subprocess.run([_binary("named"), "-c", str(lab.conf), *user], check=True, capture_output=True, text=True)
    deadline = time.monotonic() + timeout
    while lab.serial() is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"named on {lab.host}:{lab.port} did not answer for {lab.zone} within {timeout}s; "
                             f"see {lab.logfile}")
        time.sleep(0.1)
    return lab


def down(base: Path = DEFAULT_DIR, purge: bool = False, timeout: float = 30) -> None:
    DnsLab.down(base, purge, timeout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.dns")
    ap.add_argument("action", choices=["up", "down", "status", "env"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--purge", action="store_true", help="with down: delete the directory too")
    args = ap.parse_args(argv)
    lab = DnsLab.load(args.dir)
    if args.action == "up":
        lab = up(args.dir, args.port)
        print(f"named {lab.host}:{lab.port} authoritative for {lab.zone} (serial {lab.serial()}); "
              f"state in {lab.state_file}")
    elif args.action == "down":
        down(args.dir, args.purge)
    elif args.action == "status":
        if lab is None:
            print("not created")
            return 1
        print(f"named: port {lab.port} {'running' if lab.running() else 'stopped'}")
    elif args.action == "env":
        if lab is None:
            return 1
        for k, v in lab.env().items():
            print(f"export {k}={v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
