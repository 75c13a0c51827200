"""pytest fixtures: the PostgreSQL lab and connection helpers."""

from __future__ import annotations

import os
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
