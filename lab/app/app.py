# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's application: a small web service that the Compose runbooks restart, scale, switch and roll back.

    GET  /health/live     200 while the process serves
    GET  /health/ready    200 when PostgreSQL and Redis answer, 503 (with the failing check) otherwise
    GET  /version         slot (blue/green), revision and the replica's hostname
    POST /items           stores a JSON object in PostgreSQL (and caches it in Redis); 201 with its id
    GET  /items/<id>      the stored object, from Redis when cached, else from PostgreSQL

Settings come from the environment (DATABASE_URL without a password, REDIS_URL, APP_SLOT, APP_REVISION);
passwords come from files (DATABASE_PASSWORD_FILE, REDIS_PASSWORD_FILE: Compose secrets under /run/secrets),
so they never show in `docker inspect`. On SIGTERM the server stops accepting connections, finishes the
requests in flight and exits.
"""

from __future__ import annotations

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

    def __init__(self, database_url: str, database_password: str, redis_url: str, redis_password: str):
        self.pool = psycopg2.pool.ThreadedConnectionPool(0, 20, database_url, password=database_password,
                                                         connect_timeout=2, application_name="lab-app")
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
        match = ITEM_PATH.match(self.path)
        if match:
            return self._guarded(self._get_item, int(match.group(1)))
        return self._send(404, {"error": f"no route for GET {self.path}"})

    def do_POST(self):
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
        self.store = Store(env["DATABASE_URL"], read_secret("DATABASE_PASSWORD_FILE"),
                           env["REDIS_URL"], read_secret("REDIS_PASSWORD_FILE"))
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
