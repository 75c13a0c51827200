"""Local servers for probe tests and the health benchmark, all on 127.0.0.1 and all stopped by ``close()``:
an HTTP(S) server with scripted paths, a certificate authority, a socket that accepts and never answers, and
a port nobody listens on."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class _Handler(BaseHTTPRequestHandler):
    """Paths: /ok (200 "status: ready"), /status/CODE, /slow/SECONDS, /flaky/KEY/N (503 until the N-th call
    for KEY), /header/NAME/VALUE (200 when the request has that header, else 400); anything else is 200."""

    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections as they would in production
    # Headers and body go out in two writes; with Nagle's algorithm the second waits ~40 ms for an ACK.
    disable_nagle_algorithm = True

    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        with server.lock:
            server.requests += 1
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            status, body = self._route(self.path.partition("?")[0].strip("/").split("/"))
            payload = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        finally:
            with server.lock:
                server.in_flight -= 1

    do_HEAD = do_GET  # noqa: N815

    def _route(self, parts):
        if parts[0] == "status":
            return int(parts[1]), f"status {parts[1]}"
        if parts[0] == "slow":
            time.sleep(float(parts[1]))
            return 200, "slow but ready"
        if parts[0] == "flaky":
            with self.server.lock:
                self.server.calls[parts[1]] += 1
                calls = self.server.calls[parts[1]]
            return (200, "ready at last") if calls >= int(parts[2]) else (503, f"not yet ({calls})")
        if parts[0] == "header":
            return (200, "header ok") if self.headers.get(parts[1]) == parts[2] else (400, "header missing")
        return 200, "status: ready"

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # hundreds of clients connect at once in the benchmark


class HttpServer:
    """``HttpServer()`` serves plain HTTP; ``HttpServer(tls=(certfile, keyfile))`` serves HTTPS."""

    def __init__(self, tls=None):
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.lock = threading.Lock()
        self.httpd.calls = Counter()
        self.httpd.requests = self.httpd.in_flight = self.httpd.max_in_flight = 0
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path="/ok", host="127.0.0.1"):
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def requests(self):
        return self.httpd.requests

    @property
    def max_in_flight(self):
        return self.httpd.max_in_flight

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class HangingServer:
    """Accepts connections and never sends a byte: a server that hangs."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self):
        self._stop.set()
        self._thread.join()
        for conn in self.held:
            conn.close()
        self.sock.close()


def closed_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def _write(path, data):
    Path(path).write_bytes(data)
    return str(path)


def make_certificates(directory, days_left, names=("localhost",), ips=("127.0.0.1",)):
    """A CA and a server certificate for ``names``/``ips`` expiring in ``days_left`` days (negative: expired).

    Returns ``{"ca": ca.pem, "cert": cert.pem, "key": key.pem}`` paths in ``directory``.
    """
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ops.runbooks test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now + datetime.timedelta(days=days_left))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {
        "ca": _write(Path(directory) / "ca.pem", ca.public_bytes(pem)),
        "cert": _write(Path(directory) / "cert.pem", cert.public_bytes(pem)),
        "key": _write(Path(directory) / "key.pem", key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
    }
