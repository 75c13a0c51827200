"""pytest fixtures: the PostgreSQL lab and connection helpers."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from lab import pg as pglab


@pytest.fixture(scope="session")
def lab():
    """The shared primary + streaming replica (started when not running). Tests must not promote it."""
    base = Path(os.environ.get("OPS_RUNBOOKS_LAB_DIR", "/tmp/ops-runbooks-lab")) / "pg"
    return pglab.up(base)


@pytest.fixture(scope="session")
def pg_conn_params(lab):
    """Connection options for the lab primary, as module arguments."""
    return {
        "login_host": lab.primary.host,
        "login_port": lab.primary.port,
        "login_user": lab.admin_user,
        "login_password": lab.admin_password,
    }


@pytest.fixture(scope="session")
def replica_conn_params(lab, pg_conn_params):
    return dict(pg_conn_params, login_port=lab.replica.port)


def connect(lab, dbname="postgres", port=None):
    return psycopg.connect(
        host=lab.primary.host, port=port or lab.primary.port, user=lab.admin_user,
        password=lab.admin_password, dbname=dbname, autocommit=True,
    )


@pytest.fixture()
def scratch_db(lab):
    """A fresh database on the primary, dropped after the test. Yields its name."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with connect(lab) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with connect(lab) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture()
def pg_pair():
    """Factory for disposable primary + streaming replica pairs: ``pg_pair(primary_port)`` uses primary_port and
    primary_port + 1 and returns the lab.pg Lab. Every pair is stopped and deleted after the test.
    For tests that promote, fence or otherwise break replication; never do that to the shared ``lab``."""
    created = []

    def make(primary_port):
        # Under /tmp rather than tmp_path: the servers run as postgres, which cannot enter pytest's 0700 dirs.
        base = Path(tempfile.mkdtemp(prefix=f"ops-runbooks-pair-{primary_port}-")) / "pg"
        created.append(base)
        return pglab.up(base, primary_port, primary_port + 1)

    yield make
    for base in created:
        pglab.down(base, purge=True)
        shutil.rmtree(base.parent, ignore_errors=True)


def server_params(lab, server):
    """Connection options of one server of a lab or pair, as module arguments."""
    return {"login_host": server.host, "login_port": server.port, "login_user": lab.admin_user,
            "login_password": lab.admin_password}


_BEHIND = {"receive": "SELECT pg_last_wal_receive_lsn() < %s::pg_lsn",
           "replay": "SELECT pg_last_wal_replay_lsn() < %s::pg_lsn"}


def wait_replica(lab, position="replay", timeout=60):
    """Wait until the replica has received (``position="receive"``) or replayed everything the primary wrote."""
    with connect(lab) as primary:
        target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    with connect(lab, port=lab.replica.port) as replica:
        deadline = time.monotonic() + timeout
        while replica.execute(_BEHIND[position], (target,)).fetchone()[0]:
            assert time.monotonic() < deadline, f"replica did not {position} up to {target} within {timeout}s"
            time.sleep(0.1)


ROOT = Path(__file__).resolve().parents[2]
LAB_COMPOSE = ROOT / "scripts" / "lab-compose.sh"


def _lab_compose(action: str, timeout: float):
    import subprocess

    return subprocess.run(["bash", str(LAB_COMPOSE), action], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def compose_lab():
    """The Compose lab, brought up through scripts/lab-compose.sh; taken down at the end if this session
    started it (``down`` fails when dockerd left rules, bridges or mounts behind). Tests that change it
    (scale, slot, revision) put it back as they found it."""
    from lab import compose
    from lab import docker as lab_docker

    # Started here only when nothing of it runs: `status` also fails while a replica restarts, and taking the
    # lab down then would pull it from under other sessions.
    def running():
        try:
            return lab_docker.answering() and bool(compose.Deployment(compose.DEFAULT_DIR).containers())
        except Exception:  # no daemon or no deployment directory: not running
            return False

    started_here = not running()
    up = _lab_compose("up", 1800)
    if up.returncode != 0:
        pytest.fail(f"scripts/lab-compose.sh up failed (exit {up.returncode}):\n{up.stdout}\n{up.stderr}",
                    pytrace=False)
    yield compose.Deployment(compose.DEFAULT_DIR)
    if started_here:
        down = _lab_compose("down", 300)
        assert down.returncode == 0, f"scripts/lab-compose.sh down failed:\n{down.stdout}\n{down.stderr}"


@pytest.fixture(scope="session")
def compose_platform(compose_lab):
    """Module arguments selecting the compose platform for the lab (as inventories/lab/group_vars does)."""
    project_dir = str(compose_lab.dir)
    return {
        "platform": "compose",
        "platform_settings": {
            "docker_host": "unix:///var/run/docker.sock",
            "project_name": compose_lab.project,
            "project_dir": project_dir,
            "files": ["compose.yaml"],
            "env_file": f"{project_dir}/.env",
            "slots": {"blue": "app_blue", "green": "app_green"},
            "proxy": {"service": "nginx", "active_slot_file": f"{project_dir}/nginx/active_slot.conf",
                      "reload_command": ["nginx", "-s", "reload"]},
            "certificates": {"site": {"cert_file": f"{project_dir}/nginx/tls/cert.pem",
                                      "key_file": f"{project_dir}/nginx/tls/key.pem"}},
        },
    }


# The Kubernetes lab's fixtures live beside their helpers.
from tests.helpers.k8s import k8s_lab, k8s_namespace  # noqa: E402,F401
