"""pg_backup against the real lab primary."""

from __future__ import annotations

import gzip
import hashlib
import json
import stat
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.helpers.ansible import run_module, run_playbook
from tests.helpers.fixtures import connect

pytestmark = pytest.mark.integration

SEED = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, total numeric(10,2));
CREATE SCHEMA sales;
CREATE TABLE sales."Line Items" (order_id int, sku text);
CREATE UNLOGGED TABLE cache (k text PRIMARY KEY, v text);
INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 20) g;
INSERT INTO orders (customer_id, total) SELECT 1 + g % 20, g * 1.5 FROM generate_series(1, 150) g;
INSERT INTO sales."Line Items" SELECT g, 'sku-' || g FROM generate_series(1, 42) g;
INSERT INTO cache SELECT 'k' || g, md5(g::text) FROM generate_series(1, 7) g;
"""
SEED_COUNTS = {"public.customers": 20, "public.orders": 150, 'sales.Line Items': 42, "public.cache": 7}


@pytest.fixture()
def seeded_db(lab, scratch_db):
    """A scratch database with a few tables, an odd table name and an unlogged table."""
    with connect(lab, scratch_db) as conn:
        conn.execute(SEED)
    return scratch_db


def scratch_databases(lab):
    """The databases verify=restore creates (other tests create and drop theirs on the same server)."""
    with connect(lab) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, 'ops_verify_')")}


def drop_databases_starting_with(lab, prefix):
    with connect(lab) as conn:
        for (name,) in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,)):
            conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


def backup_args(conn_params, db, dest, **options):
    return dict(conn_params, db=db, dest=str(dest), **options)


def files(directory):
    return sorted(p.name for p in Path(directory).iterdir()) if Path(directory).exists() else []


def test_backup_writes_private_dump_and_manifest(lab, pg_conn_params, seeded_db, tmp_path):
    res = run_module("pg_backup", backup_args(pg_conn_params, seeded_db, tmp_path))
    assert not res.failed and res.changed, res
    dump, manifest_file = Path(res["path"]), Path(res["manifest"])
    assert files(tmp_path) == sorted([dump.name, manifest_file.name])
    for path in (dump, manifest_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    data = dump.read_bytes()
    assert data[:5] == b"PGDMP"
    manifest = json.loads(manifest_file.read_text())
    assert hashlib.sha256(data).hexdigest() == res["sha256"] == manifest["sha256"]
    assert len(data) == res["size"] == manifest["size"]
    assert (manifest["database"], manifest["format"], manifest["file"]) == (seeded_db, "custom", dump.name)
    assert manifest["row_counts"] == res["row_counts"] == SEED_COUNTS
    with connect(lab) as conn:
        server_version = conn.info.server_version
    assert manifest["server_version_num"] == server_version
    assert manifest["pg_dump_version"].startswith(f"pg_dump (PostgreSQL) {server_version // 10000}.")
    assert datetime.fromisoformat(manifest["started_at"]) <= datetime.fromisoformat(manifest["finished_at"])
    assert res["verification"] == {"method": "checksum", "ok": True} == manifest["verification"]
    password = pg_conn_params["login_password"]
    assert password not in manifest_file.read_text() and password not in json.dumps(res)
    assert not any(password in arg for arg in res["command"])


def test_plain_format_and_verifications_under_concurrent_writes(lab, pg_conn_params, seeded_db, tmp_path):
    # Rows keep arriving during the backups; verify=restore only passes when the recorded counts and the dump
    # come from one snapshot.
    stop, inserted = threading.Event(), []

    def writer():
        with connect(lab, seeded_db) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO orders (customer_id, total) VALUES (1, 1)")
                inserted.append(1)
                stop.wait(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        run = run_playbook([{"ops.runbooks.pg_backup": backup_args(pg_conn_params, seeded_db, tmp_path, **options)}
                            for options in (dict(format="plain", verify="restore"), dict(verify="list"),
                                            dict(verify="restore"))])
    finally:
        stop.set()
        thread.join()
    plain, listed, restored = run.results
    for res in run.results:
        assert not res.failed and res.changed, res
    assert len(inserted) > 10
    assert plain["path"].endswith(".sql.gz") and plain["format"] == "plain"
    sql_text = gzip.decompress(Path(plain["path"]).read_bytes()).decode()
    assert 'CREATE TABLE sales."Line Items"' in sql_text and "PostgreSQL database dump complete" in sql_text
    assert plain["verification"]["ok"] and plain["verification"]["tables_compared"] == len(SEED_COUNTS)
    assert listed["verification"]["ok"] and listed["verification"]["toc_entries"] > len(SEED_COUNTS)
    assert restored["verification"]["ok"]
    # The counts moved between backups (the writer ran) and each matched its own restored copy.
    assert plain["row_counts"]["public.orders"] < restored["row_counts"]["public.orders"]
    assert {n for n in scratch_databases(lab) if n.endswith(seeded_db)} == set()


def test_retention_keep_last_then_keep_days(pg_conn_params, seeded_db, tmp_path):
    # Files retention must never touch: another database's backup, a stray file, and a file outside dest
    # that a manifest for this very database points to.
    outside = tmp_path.parent / f"{tmp_path.name}_outside.dump"
    outside.write_bytes(b"PGDMP")
    foreign = (("other_1.dump.json", "other", "other_1.dump"), ("evil.json", seeded_db, f"../{outside.name}"))
    for name, db, file in foreign:
        (tmp_path / name).write_text(json.dumps({
            "tool": "ops.runbooks.pg_backup", "database": db, "file": file, "sha256": "0" * 64, "format": "custom",
            "started_at": "2020-01-01T00:00:00+00:00"}))
    (tmp_path / "other_1.dump").write_bytes(b"PGDMP")
    (tmp_path / "notes.txt").write_text("keep me")
    args = backup_args(pg_conn_params, seeded_db, tmp_path, verify="none", keep_last=2)
    first, second, third = run_playbook([{"ops.runbooks.pg_backup": args}] * 3).results
    assert [r["pruned"] for r in (first, second, third)] == [[], [], [Path(first["path"]).name]], third
    ours = [Path(r["path"]).name for r in (second, third)]
    assert files(tmp_path) == sorted(["evil.json", "notes.txt", "other_1.dump", "other_1.dump.json"]
                                     + ours + [f"{n}.json" for n in ours])

    # Age the second backup by ten days: keep_days=7 prunes it alone (third and the new one are recent).
    manifest = Path(second["manifest"])
    data = json.loads(manifest.read_text())
    data["started_at"] = (datetime.now(UTC) - timedelta(days=10)).isoformat()
    manifest.write_text(json.dumps(data))
    args = backup_args(pg_conn_params, seeded_db, tmp_path, verify="none", keep_days=7)
    check, applied = run_playbook([{"ops.runbooks.pg_backup": args, "check_mode": True},
                                   {"ops.runbooks.pg_backup": args}]).results
    assert check["would_prune"] == [ours[0]] and check["pruned"] == [], check
    assert applied["pruned"] == [ours[0]] and applied["would_prune"] == [], applied
    assert ours[1] in files(tmp_path) and ours[0] not in files(tmp_path)
    assert {"evil.json", "other_1.dump.json", "notes.txt"} <= set(files(tmp_path)) and outside.exists()


@pytest.fixture()
def restricted_role(lab, seeded_db):
    """A role that may read seeded_db's tables but not get past row-level security on one of them, so
    pg_dump fails in the middle of writing the data."""
    role, password = f"dumper_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with connect(lab) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(password)))
    with connect(lab, seeded_db) as conn:
        conn.execute("CREATE TABLE zz_guarded (id int); INSERT INTO zz_guarded VALUES (1);"
                     "ALTER TABLE zz_guarded ENABLE ROW LEVEL SECURITY;"
                     "CREATE POLICY only_owner ON zz_guarded USING (false)")
        for what in ("TABLES IN SCHEMA public", "TABLES IN SCHEMA sales", "SEQUENCES IN SCHEMA public"):
            conn.execute(psycopg.sql.SQL("GRANT SELECT ON ALL {} TO {}").format(
                psycopg.sql.SQL(what), psycopg.sql.Identifier(role)))
        conn.execute(psycopg.sql.SQL("GRANT USAGE ON SCHEMA sales TO {}").format(psycopg.sql.Identifier(role)))
    yield role, password
    with connect(lab) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (seeded_db,))
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            psycopg.sql.Identifier(seeded_db)))
        conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))


def test_failed_dump_leaves_no_file(lab, pg_conn_params, seeded_db, restricted_role, tmp_path):
    role, password = restricted_role
    as_role = dict(pg_conn_params, login_user=role, login_password=password)
    cases = [
        (backup_args(as_role, seeded_db, tmp_path / "rls_plain", format="plain"), "row-level security"),
        (backup_args(as_role, seeded_db, tmp_path / "rls_custom"), "row-level security"),
        (backup_args(pg_conn_params, f"missing_{uuid.uuid4().hex[:6]}", tmp_path / "nodb"), "does not exist"),
        (backup_args(pg_conn_params, seeded_db, tmp_path / "nobin", pg_bin_dir=str(tmp_path)), "pg_bin_dir"),
    ]
    run = run_playbook([{"ops.runbooks.pg_backup": args} for args, _ in cases])
    for (args, needle), res in zip(cases, run.results, strict=True):
        assert res.failed, (args, res)
        assert needle in res["msg"], res["msg"]
        assert files(args["dest"]) == [], (args["dest"], files(args["dest"]))
    assert "pg_dump exited with 1" in run.results[0]["msg"] and "partial file was removed" in run.results[0]["msg"]
    assert run.results[0]["rolled_back"] == [] and run.results[0]["applied"][0].startswith("create directory")
    assert password not in run.stdout


def test_check_mode_writes_nothing(lab, pg_conn_params, seeded_db, tmp_path):
    existing = run_module("pg_backup", backup_args(pg_conn_params, seeded_db, tmp_path, verify="none"))
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in tmp_path.iterdir()}
    dbs_before = scratch_databases(lab)
    missing_dest = tmp_path / "not" / "yet"
    run = run_playbook([
        {"ops.runbooks.pg_backup": backup_args(pg_conn_params, seeded_db, tmp_path, verify="restore", keep_last=1)},
        {"ops.runbooks.pg_backup": backup_args(pg_conn_params, seeded_db, missing_dest, format="plain")},
    ], check=True, diff=True)
    planned, new_dir = run.results
    assert not planned.failed and planned.changed, planned
    assert Path(planned["path"]).parent == tmp_path and not Path(planned["path"]).exists()
    assert planned["would_prune"] == [Path(existing["path"]).name] and planned["pruned"] == []
    assert planned["sha256"] is None and planned["size"] is None
    assert "--format=custom" in planned["command"] and f"--dbname={seeded_db}" in planned["command"]
    assert planned["queries"][0].startswith('CREATE DATABASE "ops_verify_')
    assert planned["diff"]["before"]["backups"] == [Path(existing["path"]).name]
    assert planned["diff"]["after"]["backups"] == [Path(planned["path"]).name]
    assert new_dir.changed and new_dir["plan"][0] == f"create directory {missing_dest} (mode 0700)"
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in tmp_path.iterdir()} == before
    assert not missing_dest.parent.exists()
    assert scratch_databases(lab) == dbs_before
    assert pg_conn_params["login_password"] not in run.stdout


def test_bad_input(pg_conn_params, seeded_db, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    dest = tmp_path / "dest"
    base = backup_args(pg_conn_params, seeded_db, dest)
    bad = [
        (dict(base, keep_last=-1), "keep_last"),
        (dict(base, keep_last=0), "keep_last"),
        (dict(base, keep_days=-3), "keep_days"),
        (dict(base, keep_last="three"), "keep_last"),
        (dict(base, format="zip"), "format"),
        (dict(base, verify="deep"), "verify"),
        (dict(base, format="plain", verify="list"), "verify"),
        (dict(base, verify="restore", row_counts=False), "verify"),
        (dict(base, dest=str(a_file)), "dest"),
        (dict(base, lock_wait_timeout="soon"), "lock_wait_timeout"),
        (dict(base, pg_bin_dir="/nonexistent/bin"), "pg_bin_dir"),
        ({k: v for k, v in base.items() if k != "dest"}, "dest"),
    ]
    run = run_playbook([{"ops.runbooks.pg_backup": args} for args, _ in bad])
    for (args, needle), res in zip(bad, run.results, strict=True):
        assert res.failed, (args, res)
        assert needle in res["msg"], (needle, res["msg"])
    assert not dest.exists() and files(tmp_path) == ["a_file"]
    assert pg_conn_params["login_password"] not in run.stdout
