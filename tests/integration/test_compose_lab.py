"""The Compose lab (lab/compose, scripts/lab-compose.sh): a real deployment that the Compose runbooks operate.

The session fixture brings the lab up through the script, as a user would. When this session started it, the
fixture takes it down again and `down` itself fails if dockerd left iptables rules, bridges or mounts behind.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml

from lab import compose
from lab import docker as lab_docker
from tests.helpers.fixtures import ROOT

pytestmark = pytest.mark.integration

def http(method: str, url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout}s")
        time.sleep(0.2)


def pg_connect(lab: compose.Deployment, port_name: str, dbname: str = "app"):
    return psycopg.connect(host=compose.BIND, port=compose.PORTS[port_name], dbname=dbname, user="runbook_admin",
                           password=lab.secret("db_admin_password"), autocommit=True, connect_timeout=5)


def container(lab: compose.Deployment, service: str) -> str:
    ids = lab.compose("ps", "--quiet", service).stdout.split()
    assert ids, f"no running container for service {service}"
    return ids[0]


def test_ready_through_nginx(compose_lab):
    status, body = http("GET", compose_lab.url("NGINX_PORT") + "/health/ready")
    assert status == 200, body
    assert body["checks"] == {"database": "ok", "redis": "ok"}


def test_write_then_read_through_nginx_lands_in_postgres_and_replicates(compose_lab):
    marker = uuid.uuid4().hex
    status, created = http("POST", compose_lab.url("NGINX_PORT") + "/items", {"marker": marker})
    assert status == 201, created
    status, item = http("GET", compose_lab.url("NGINX_PORT") + f"/items/{created['id']}")
    assert status == 200 and item["body"] == {"marker": marker}, item
    assert http("GET", compose_lab.url("NGINX_PORT") + "/items/999999999999")[0] == 404
    assert http("POST", compose_lab.url("NGINX_PORT") + "/items", ["not", "an", "object"])[0] == 400

    query = "SELECT body->>'marker' FROM items WHERE id = %s"
    with pg_connect(compose_lab, "PG_PRIMARY_PORT") as conn:
        assert conn.execute(query, (created["id"],)).fetchone() == (marker,)
    with pg_connect(compose_lab, "PG_REPLICA_PORT") as conn:
        wait_for(lambda: conn.execute(query, (created["id"],)).fetchone() == (marker,), 30,
                 "the item to reach the replica")


def test_replica_streams_from_primary(compose_lab):
    with pg_connect(compose_lab, "PG_PRIMARY_PORT", "postgres") as conn:
        rows = conn.execute("SELECT application_name, state FROM pg_stat_replication").fetchall()
        assert rows == [("lab_replica", "streaming")]
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    with pg_connect(compose_lab, "PG_REPLICA_PORT", "postgres") as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone() == ("streaming",)


def test_each_slot_answers_on_its_own(compose_lab):
    env = compose_lab.env()
    for slot, port in (("blue", "BLUE_PORT"), ("green", "GREEN_PORT")):
        status, version = http("GET", compose_lab.url(port) + "/version")
        assert status == 200, version
        assert version["slot"] == slot and version["revision"] == env[f"APP_{slot.upper()}_REVISION"]
        assert http("GET", compose_lab.url(port) + "/health/ready")[0] == 200
    active = (compose_lab.dir / "nginx" / "active_slot.conf").read_text()
    public_slot = http("GET", compose_lab.url("NGINX_PORT") + "/version")[1]["slot"]
    assert f"set $active_slot app_{public_slot};" in active
    # Both blue replicas serve: nginx resolves the service name to every replica.
    hostnames = {http("GET", compose_lab.url("BLUE_PORT") + "/version")[1]["hostname"] for _ in range(30)}
    assert len(hostnames) == int(env["APP_BLUE_REPLICAS"]) == 2


def test_secret_values_never_reach_docker_inspect(compose_lab):
    values = [compose_lab.secret(name) for name in compose.SECRETS]
    assert all(len(v) >= 24 for v in values)
    for name in compose.SECRETS:
        assert (compose_lab.dir / "secrets" / name).stat().st_mode & 0o777 == 0o600
    ids = compose_lab.compose("ps", "--all", "--quiet").stdout.split()
    assert len(ids) == 7  # 2 blue + 1 green + nginx + primary + replica + redis
    inspected = lab_docker.docker("inspect", *ids).stdout
    leaked = [name for name, value in zip(compose.SECRETS, values, strict=True) if value in inspected]
    assert leaked == [], f"secret values visible in docker inspect: {leaked}"
    app_env = json.loads(lab_docker.docker("inspect", container(compose_lab, "app_blue")).stdout)[0]["Config"]["Env"]
    assert "DATABASE_PASSWORD_FILE=/run/secrets/db_app_password" in app_env
    assert "DATABASE_URL=postgresql://app@db_primary:5432/app" in app_env


def test_ready_reports_503_naming_redis_while_redis_is_frozen(compose_lab):
    url = compose_lab.url("GREEN_PORT") + "/health/ready"
    compose_lab.compose("pause", "redis")
    try:
        def failing():
            status, body = http("GET", url)
            return body if status == 503 else None

        body = wait_for(failing, 30, "readiness to fail while Redis is paused")
        assert body["checks"]["database"] == "ok" and body["checks"]["redis"].startswith("failed"), body
    finally:
        compose_lab.compose("unpause", "redis")
    wait_for(lambda: http("GET", url)[0] == 200, 30, "readiness to recover after Redis is unpaused")
    # Leave the lab as found: Docker marked Redis unhealthy while it was paused.
    wait_for(lambda: health(container(compose_lab, "redis")) == "healthy", 30, "Redis to be healthy again")


def health(container_id: str) -> str:
    return lab_docker.docker("inspect", "--format", "{{.State.Health.Status}}", container_id).stdout.strip()


def test_sigterm_finishes_the_request_in_flight(compose_lab):
    """A replica told to stop closes its listening socket but still answers the request it is reading."""
    green = container(compose_lab, "app_green")
    ip = next(iter(json.loads(lab_docker.docker("inspect", green).stdout)[0]["NetworkSettings"]["Networks"]
                   .values()))["IPAddress"]
    body = json.dumps({"marker": "in-flight"}).encode()
    head = (f"POST /items HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    try:
        with socket.create_connection((ip, 8000), timeout=10) as conn:
            conn.sendall(head + body[:5])
            lab_docker.docker("kill", "--signal", "SIGTERM", green)
            wait_for(lambda: _refused(ip, 8000), 10, "the stopping replica to close its listening socket")
            conn.sendall(body[5:])
            response = b""
            while chunk := conn.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 201"), response
        assert json.loads(response.split(b"\r\n\r\n", 1)[1])["slot"] == "green"
        logs = lab_docker.docker("logs", "--tail", "10", green).stderr
        assert "stopped after finishing requests in flight" in logs
    finally:
        lab_docker.docker("wait", green, timeout=60)  # `docker kill` counts as a manual stop: no restart policy
        compose_lab.compose("up", "--detach", "--wait", "--wait-timeout", "120")


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return False
    except OSError:
        return True


def test_lab_inventory_reaches_the_running_lab(compose_lab, tmp_path):
    """inventories/lab describes this lab: its templated values reach the running services."""
    out = tmp_path / "vars.json"
    play = [{"hosts": "compose_hosts", "gather_facts": False, "tasks": [{
        "ansible.builtin.copy": {"dest": str(out), "mode": "0600", "content": "{{ {"
                                 "'platform': runbook_platform, 'settings': runbook_platform_settings, "
                                 "'public': runbook_public_url, 'slots': runbook_slot_urls, "
                                 "'postgres': runbook_postgres, 'redis': runbook_redis} | to_json }}"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i",
                          str(ROOT / "inventories" / "lab" / "hosts.yml"), str(tmp_path / "play.yml")],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    inv = json.loads(out.read_text())

    assert inv["platform"] == "compose"
    settings = inv["settings"]
    assert Path(settings["project_dir"]) == compose_lab.dir and settings["project_name"] == compose_lab.project
    assert Path(settings["proxy"]["active_slot_file"]).is_file()
    services = set(compose_lab.compose("config", "--services").stdout.split())
    assert {*settings["slots"].values(), settings["proxy"]["service"], inv["redis"]["service"],
            inv["postgres"]["primary"]["service"], inv["postgres"]["replica"]["service"]} == services

    assert http("GET", inv["public"] + "/health/ready")[0] == 200
    for slot, url in inv["slots"].items():
        assert http("GET", url + "/version")[1]["slot"] == slot
    pg = inv["postgres"]
    password = Path(pg["admin_password_file"]).read_text().strip()
    for role, in_recovery in (("primary", False), ("replica", True)):
        with psycopg.connect(host=pg[role]["host"], port=pg[role]["port"], user=pg["admin_user"], password=password,
                             dbname=pg["app_database"], connect_timeout=5) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (in_recovery,)
    redis_password = Path(inv["redis"]["password_file"]).read_text().strip()
    with socket.create_connection((inv["redis"]["host"], inv["redis"]["port"]), timeout=5) as conn:
        conn.sendall(f"AUTH {redis_password}\r\nPING\r\n".encode())
        reply = b""
        while reply.count(b"\r\n") < 2 and (chunk := conn.recv(64)):
            reply += chunk
        assert reply == b"+OK\r\n+PONG\r\n"


def test_nginx_serves_tls_with_the_certificate_files_of_the_deployment(compose_lab):
    """The TLS listener cert_renew deploys to: its pair lives in nginx/tls (key 0600) and is what nginx serves."""
    import hashlib
    import ssl

    tls_dir = compose_lab.dir / "nginx" / "tls"
    assert (tls_dir / "key.pem").stat().st_mode & 0o777 == 0o600
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def served():
        with socket.create_connection((compose.BIND, compose.PORTS["NGINX_TLS_PORT"]), timeout=5) as sock:
            with context.wrap_socket(sock, server_hostname=compose.TLS_NAMES[0]) as tls:
                der = tls.getpeercert(binary_form=True)
                tls.sendall(f"GET /_nginx/health HTTP/1.1\r\nHost: {compose.TLS_NAMES[0]}\r\n"
                            "Connection: close\r\n\r\n".encode())
                return hashlib.sha256(der).hexdigest(), tls.recv(4096)

    deployed = ssl.PEM_cert_to_DER_cert((tls_dir / "cert.pem").read_text().split("-----END CERTIFICATE-----")[0]
                                        + "-----END CERTIFICATE-----\n")
    # A reload (cert_renew, a test putting its certificate back) may still be taking effect.
    wait_for(lambda: served()[0] == hashlib.sha256(deployed).hexdigest(), 30, "nginx to serve nginx/tls/cert.pem")
    assert served()[1].startswith(b"HTTP/1.1 200")
