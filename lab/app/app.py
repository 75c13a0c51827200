# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's application: a small web service that the Compose runbooks restart, scale, switch and roll back.

    GET  /health/live     200 while the process serves
    GET  /health/ready    200 when PostgreSQL and Redis answer, 503 (with the failing check) otherwise
    GET  /version         slot (blue/green), revision and the replica's hostname
    POST /items           stores a JSON object in PostgreSQL (and caches it in Redis); 201 with its id
    GET  /items/<id>      the stored object, from Redis when cached, else from PostgreSQL
    GET  /credentials     which credentials this replica uses: the database login role and fingerprints of the
                          database and Redis passwords and of the current and previous JWT signing keys (never a value)
    POST /token           a JWT (HS256) signed with the current signing key
    GET  /whoami          200 when the Bearer token is signed with the current or the previous key, else 401

Settings come from the environment (DATABASE_URL without a password, REDIS_URL, APP_SLOT, APP_REVISION);
passwords and keys come from files (DATABASE_PASSWORD_FILE, REDIS_PASSWORD_FILE, JWT_SIGNING_KEY_FILE,
JWT_SIGNING_KEY_PREVIOUS_FILE: Compose secrets under /run/secrets), so they never show in `docker inspect`; the
database login role, when DATABASE_USER_FILE names a file, comes from it (secret_rotate alternates two
roles). On SIGTERM the server stops accepting connections, finishes the
requests in flight and exits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pwd
import re
import signal
import socket
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2
import psycopg2.pool
import redis

MAX_BODY = 1 << 20
CACHE_TTL = 300
ITEM_PATH = re.compile(r"^/items/(\d{1,18})$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id bigserial PRIMARY KEY,
    body jsonb NOT NULL,
    slot text NOT NULL,
    revision text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)"""


def read_secret(env_name: str) -> str:
    path = os.environ.get(env_name)
    return Path(path).read_text().strip() if path else ""


def fingerprint(value: str) -> str | None:
    """The digest secret_rotate compares (_credentials.fingerprint): tells versions apart, reveals nothing."""
    if not value:
        return None
    return "sha256:" + hashlib.sha256(b"ops.runbooks fingerprint:" + value.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_sign(key: str, claims: dict) -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode())
    return head + "." + _b64(hmac.new(key.encode(), head.encode(), hashlib.sha256).digest())


def jwt_check(keys: dict[str, str], token: str) -> tuple[str, dict] | None:
    """(name of the key that signed ``token``, its claims), None when no key of ``keys`` did."""
    head, _dot, signature = token.rpartition(".")
    for name, key in keys.items():
        if key and hmac.compare_digest(_b64(hmac.new(key.encode(), head.encode(), hashlib.sha256).digest()), signature):
            payload = head.partition(".")[2]
            return name, json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return None


def drop_privileges(user: str) -> None:
    """Compose without swarm bind-mounts secret files with the host's owner and 0600 mode, so only root can read
    them: the process starts as root, reads them, then runs as ``user`` for everything else."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


class Store:
    """PostgreSQL (the record) and Redis (a read cache). Broken connections are dropped, never reused."""

    def __init__(self, database_url: str, database_password: str, redis_url: str, redis_password: str,
                 database_user: str = ""):
        user = {"user": database_user} if database_user else {}
        self.pool = psycopg2.pool.ThreadedConnectionPool(0, 20, database_url, password=database_password,
                                                         connect_timeout=2, application_name="lab-app", **user)
        self.redis = redis.Redis.from_url(redis_url, password=redis_password or None, socket_timeout=2,
                                          socket_connect_timeout=2, decode_responses=True)
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @contextmanager
    def cursor(self):
        conn = self.pool.getconn()
        broken = False
        try:
            with conn, conn.cursor() as cur:  # commits on success, rolls back on error
                if not self._schema_ready:
                    self._ensure_schema(cur)
                yield cur
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        finally:
            self.pool.putconn(conn, close=broken or bool(conn.closed))

    def _ensure_schema(self, cur) -> None:
        # Replicas of both slots start together: the advisory lock keeps two CREATE TABLE IF NOT EXISTS from
        # racing on the catalog.
        with self._schema_lock:
            cur.execute("SELECT pg_advisory_xact_lock(4242)")
            cur.execute(SCHEMA)
            self._schema_ready = True

    def checks(self) -> dict[str, str]:
        result = {}
        try:
            with self.cursor() as cur:
                cur.execute("SELECT 1")
            result["database"] = "ok"
        except (psycopg2.Error, psycopg2.pool.PoolError) as exc:
            result["database"] = f"failed: {str(exc).strip()}"
        try:
            self.redis.ping()
            result["redis"] = "ok"
        except redis.RedisError as exc:
            result["redis"] = f"failed: {exc}"
        return result

    def add(self, body: dict, slot: str, revision: str) -> int:
        with self.cursor() as cur:
            cur.execute("INSERT INTO items (body, slot, revision) VALUES (%s, %s, %s) RETURNING id",
                        (json.dumps(body), slot, revision))
            item_id = cur.fetchone()[0]
        self._cache(item_id, body)
        return item_id

    def get(self, item_id: int) -> tuple[dict | None, str]:
        try:
            cached = self.redis.get(f"item:{item_id}")
            if cached is not None:
                return json.loads(cached), "cache"
        except redis.RedisError:
            pass  # the cache is an optimisation: fall through to the record
        with self.cursor() as cur:
            cur.execute("SELECT body FROM items WHERE id = %s", (item_id,))
            row = cur.fetchone()
        if row is None:
            return None, "database"
        self._cache(item_id, row[0])
        return row[0], "database"

    def _cache(self, item_id: int, body: dict) -> None:
        try:
            self.redis.set(f"item:{item_id}", json.dumps(body), ex=CACHE_TTL)
        except redis.RedisError:
            pass


class Handler(BaseHTTPRequestHandler):
    server_version = "lab-app"
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        app: App = self.server.app
        if self.path == "/health/live":
            return self._send(200, {"status": "live"})
        if self.path == "/health/ready":
            if app.draining.is_set():
                return self._send(503, {"status": "draining"})
            checks = app.store.checks()
            ready = all(v == "ok" for v in checks.values())
            return self._send(200 if ready else 503, {"status": "ready" if ready else "not ready", "checks": checks})
        if self.path == "/version":
            return self._send(200, {"slot": app.slot, "revision": app.revision, "hostname": socket.gethostname()})
        if self.path == "/credentials":
            return self._guarded(self._credentials, None)
        if self.path == "/whoami":
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            found = jwt_check({"current": app.jwt_key, "previous": app.jwt_previous}, token) if token else None
            if found is None:
                return self._send(401, {"error": "no token signed with a key this replica accepts"})
            return self._send(200, {"key": found[0], "claims": found[1]})
        match = ITEM_PATH.match(self.path)
        if match:
            return self._guarded(self._get_item, int(match.group(1)))
        return self._send(404, {"error": f"no route for GET {self.path}"})

    def do_POST(self):
        app: App = self.server.app
        if self.path == "/token" and app.jwt_key:
            return self._send(200, {"token": jwt_sign(app.jwt_key, {"sub": "lab", "slot": app.slot}),
                                    "key": fingerprint(app.jwt_key)})
        if self.path != "/items":
            return self._send(404, {"error": f"no route for POST {self.path}"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._send(413, {"error": f"body larger than {MAX_BODY} bytes"})
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError as exc:
            return self._send(400, {"error": f"body is not JSON: {exc}"})
        if not isinstance(body, dict):
            return self._send(400, {"error": "body must be a JSON object"})
        return self._guarded(self._add_item, body)

    def _credentials(self, _arg):
        app: App = self.server.app
        with app.store.cursor() as cur:
            cur.execute("SELECT session_user")
            session_user = cur.fetchone()[0]
        return self._send(200, {
            "database": {"user": session_user, "password": fingerprint(app.secrets["database"])},
            "redis": {"password": fingerprint(app.secrets["redis"])},
            "jwt": {"current": fingerprint(app.jwt_key), "previous": fingerprint(app.jwt_previous)},
        })

    def _get_item(self, item_id):
        body, source = self.server.app.store.get(item_id)
        if body is None:
            return self._send(404, {"error": f"item {item_id} not found"})
        return self._send(200, {"id": item_id, "body": body, "source": source})

    def _add_item(self, body):
        app: App = self.server.app
        item_id = app.store.add(body, app.slot, app.revision)
        return self._send(201, {"id": item_id, "slot": app.slot, "revision": app.revision})

    def _guarded(self, action, arg):
        try:
            return action(arg)
        except (psycopg2.Error, psycopg2.pool.PoolError) as exc:
            return self._send(503, {"error": f"database unavailable: {str(exc).strip()}"})

    def _send(self, status: int, payload: dict) -> None:
        data = (json.dumps(payload) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.server.app.draining.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        path = getattr(self, "path", "")
        if not path.startswith("/health/"):  # probes every few seconds would drown the request log
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


class App:
    def __init__(self, env: dict[str, str]):
        self.slot = env.get("APP_SLOT", "blue")
        self.revision = env.get("APP_REVISION", "unknown")
        self.draining = threading.Event()
        # The connection string comes from a secret file when one is named (DR: failover rewrites it), else env.
        database_url = read_secret("DATABASE_URL_FILE") or env["DATABASE_URL"]
        self.secrets = {"database": read_secret("DATABASE_PASSWORD_FILE"), "redis": read_secret("REDIS_PASSWORD_FILE")}
        self.jwt_key = read_secret("JWT_SIGNING_KEY_FILE")
        self.jwt_previous = read_secret("JWT_SIGNING_KEY_PREVIOUS_FILE")
        self.store = Store(database_url, self.secrets["database"], env["REDIS_URL"], self.secrets["redis"],
                           database_user=read_secret("DATABASE_USER_FILE"))
        self.server = ThreadingHTTPServer(("0.0.0.0", int(env.get("APP_PORT", "8000"))), Handler)
        # Non-daemon request threads: server_close() then waits for the requests in flight.
        self.server.daemon_threads = False
        self.server.app = self

    def stop(self, signum, frame):
        self.draining.set()
        # shutdown() blocks until serve_forever returns, so it cannot run in the signal handler's thread.
        threading.Thread(target=self.server.shutdown, daemon=True).start()

    def drain_backlog(self) -> None:
        """Serve the connections already queued on the listening socket. Closing it would reset them after the
        proxy has sent their request, and a proxy must not retry a POST it has sent."""
        sock = self.server.socket
        sock.setblocking(False)
        while True:
            try:
                request, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            request.setblocking(True)
            self.server.process_request(request, address)

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        print(f"lab-app slot={self.slot} revision={self.revision} listening on {self.server.server_address}",
              file=sys.stderr, flush=True)
        self.server.serve_forever(poll_interval=0.1)
        self.drain_backlog()
        self.server.server_close()  # closes the listening socket first, then joins the request threads
        print("lab-app stopped after finishing requests in flight", file=sys.stderr, flush=True)


def main() -> int:
    app = App(dict(os.environ))  # reads the secret files, still as root
    drop_privileges(os.environ.get("APP_USER", "app"))
    app.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
