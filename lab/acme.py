"""ACME lab: pebble (Let's Encrypt's test ACME server) on loopback, validating dns-01 against the DNS lab.

    python -m lab.acme up     [--dir DIR] [--port N]
    python -m lab.acme down   [--dir DIR] [--purge]
    python -m lab.acme status [--dir DIR]
    python -m lab.acme env    [--dir DIR]      # shell exports for the directory URL, CA file and account key

Validation is real: pebble asks the DNS lab's BIND server (``-dnsserver 127.0.0.1:55353``, see lab/dns.py) for
``_acme-challenge.<name>`` TXT records, which the ACME client publishes there with RFC 2136 + TSIG. So the names
a test orders must lie in the DNS lab's zone ``lab.example.`` (``www.lab.example``), and the DNS lab must run
(``up`` starts it when it does not). PEBBLE_VA_ALWAYS_VALID is not used.

Debian's pebble ships no certificate for its own HTTPS port: ``up`` makes a small CA and a server certificate
for 127.0.0.1/localhost with ``cryptography`` (``ca.pem`` is what an ACME client trusts), and an ACME account key
(``account.key``, 0600) for the tests and the lab inventory. Pebble makes a new issuing root at every start;
``up`` saves it as ``issuer-root.pem`` from the management port. Idempotent like lab/dns.py: ``up`` on a running
server only checks it, ``down`` on a stopped one is a no-op.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lab import dns as dnslab
from lab._daemon import DaemonState

DEFAULT_DIR = Path(os.environ.get("OPS_RUNBOOKS_LAB_DIR", "/tmp/ops-runbooks-lab")) / "acme"
DEFAULT_PORT = 55400  # ACME directory; the management interface listens on the next port
DNS_DIR = Path(os.environ.get("OPS_RUNBOOKS_LAB_DIR", "/tmp/ops-runbooks-lab")) / "dns"


def _binary() -> str:
    found = shutil.which("pebble")
    if not found:
        raise SystemExit("pebble not found; run scripts/bootstrap.sh (Debian package pebble)")
    return found


@dataclass
class AcmeLab(DaemonState):
    DAEMON = "pebble"

    base: str
    host: str
    port: int
    management_port: int
    dns_server: str

    @property
    def directory_url(self) -> str:
        return f"https://{self.host}:{self.port}/dir"

    @property
    def ca_file(self) -> Path:
        """The CA that signed pebble's own HTTPS certificate: what ACME clients trust for the directory URL."""
        return Path(self.base) / "ca.pem"

    @property
    def account_key_file(self) -> Path:
        return Path(self.base) / "account.key"

    @property
    def issuer_root_file(self) -> Path:
        """The root pebble signs issued certificates with (new at every start)."""
        return Path(self.base) / "issuer-root.pem"

    @property
    def conf(self) -> Path:
        return Path(self.base) / "pebble.json"

    def _get(self, url: str) -> bytes | None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(url, context=context, timeout=2) as resp:
                return resp.read()
        except (OSError, ValueError):
            return None

    def answering(self) -> bool:
        body = self._get(self.directory_url)
        try:
            return body is not None and "newOrder" in json.loads(body)
        except ValueError:
            return False

    def env(self) -> dict[str, str]:
        return {"OPS_ACME_DIRECTORY": self.directory_url, "OPS_ACME_CA_CERT": str(self.ca_file),
                "OPS_ACME_ACCOUNT_KEY": str(self.account_key_file), "OPS_ACME_DNS_SERVER": self.dns_server}


def _make_tls_files(base: Path, host: str) -> None:
    """A CA, pebble's HTTPS certificate for ``host``/localhost signed by it, and an ACME account key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ops.runbooks lab ACME server CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (base / "ca.pem").write_bytes(ca.public_bytes(pem))
    (base / "server.pem").write_bytes(cert.public_bytes(pem))
    for name, private in (("server.key", key), ("account.key", ec.generate_private_key(ec.SECP256R1()))):
        fd = os.open(base / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _write_conf(lab: AcmeLab) -> None:
    base = Path(lab.base)
    lab.conf.write_text(json.dumps({"pebble": {
        "listenAddress": f"{lab.host}:{lab.port}",
        "managementListenAddress": f"{lab.host}:{lab.management_port}",
        "certificate": str(base / "server.pem"),
        "privateKey": str(base / "server.key"),
        # Ports pebble's validator would connect to for http-01 and tls-alpn-01; the lab validates dns-01 only.
        "httpPort": 55480,
        "tlsPort": 55481,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }}, indent=2))


def up(base: Path = DEFAULT_DIR, port: int = DEFAULT_PORT, host: str = "127.0.0.1", timeout: float = 30) -> AcmeLab:
    base = Path(base)
    dns = dnslab.up(DNS_DIR)
    lab = AcmeLab.load(base)
    if lab is None:
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True, mode=0o700)
        lab = AcmeLab(base=str(base), host=host, port=port, management_port=port + 1,
                      dns_server=f"{dns.host}:{dns.port}")
        _make_tls_files(base, host)
        _write_conf(lab)
        lab.save()
    if not lab.running():
        # Every order proves its names again (no reuse of valid authorizations), so each renewal really publishes
        # and validates dns-01 records; no random sleeps before validation, no nonces rejected at random.
        env = dict(os.environ, PEBBLE_AUTHZREUSE="0", PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
        env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        with open(lab.logfile, "ab") as log:
            proc = subprocess.Popen([_binary(), "-config", str(lab.conf), "-dnsserver", lab.dns_server],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=lab.base, start_new_session=True)
        lab.pidfile.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while not lab.answering():
        if not lab.running() or time.monotonic() > deadline:
            raise SystemExit(f"pebble on {lab.host}:{lab.port} did not answer within {timeout}s; see {lab.logfile}")
        time.sleep(0.1)
    root = lab._get(f"https://{lab.host}:{lab.management_port}/roots/0")
    if root:
        lab.issuer_root_file.write_bytes(root)
    return lab


def down(base: Path = DEFAULT_DIR, purge: bool = False, timeout: float = 30) -> None:
    AcmeLab.down(base, purge, timeout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.acme")
    ap.add_argument("action", choices=["up", "down", "status", "env"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument("--purge", action="store_true", help="with down: delete the directory too")
    args = ap.parse_args(argv)
    lab = AcmeLab.load(args.dir)
    if args.action == "up":
        lab = up(args.dir, args.port)
        print(f"pebble {lab.directory_url} (dns-01 against {lab.dns_server}); trust {lab.ca_file}; "
              f"account key {lab.account_key_file}")
    elif args.action == "down":
        down(args.dir, args.purge)
    elif args.action == "status":
        if lab is None:
            print("not created")
            return 1
        print(f"pebble: port {lab.port} {'running' if lab.running() else 'stopped'}")
    elif args.action == "env":
        if lab is None:
            return 1
        for k, v in lab.env().items():
            print(f"export {k}={v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
