"""pg_restore against the real lab primary."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.helpers.ansible import four_steps, run_module, run_playbook
from tests.helpers.fixtures import connect
from tests.integration.test_pg_backup import (  # noqa: F401  (seeded_db is a fixture)
    SEED_COUNTS,
    backup_args,
    drop_databases_starting_with,
    seeded_db,
)

pytestmark = pytest.mark.integration

PG_BIN = "/usr/lib/postgresql/15/bin"


@pytest.fixture()
def target(lab):
    """A target name; every database named after it (the target, _restore_ and _old_ copies) is dropped."""
    name = f"r_{uuid.uuid4().hex[:10]}"
    yield name
    drop_databases_starting_with(lab, name)


@pytest.fixture()
def manifest(pg_conn_params, seeded_db, tmp_path):  # noqa: F811
    res = run_module("pg_backup", backup_args(pg_conn_params, seeded_db, tmp_path / "backups", verify="none"))
    assert not res.failed, res
    return res["manifest"]


def shell_dump(lab, db, directory):
    """What teams do by hand: pg_dump | gzip, then sha256sum."""
    directory.mkdir(exist_ok=True)
    subprocess.run(f"{PG_BIN}/pg_dump -h {lab.primary.host} -p {lab.primary.port} -U {lab.admin_user} {db} "
                   "| gzip > dump.sql.gz && sha256sum dump.sql.gz > dump.sql.gz.sha256", shell=True, check=True,
                   cwd=directory, env={"PGPASSWORD": lab.admin_password, "PATH": "/usr/bin:/bin"})
    return directory / "dump.sql.gz"


def databases(lab, *prefixes):
    """name -> (comment, allows connections) for the databases whose names start with one of ``prefixes``.
    (Other tests create and drop databases on the same server meanwhile, so never compare them all.)"""
    with connect(lab) as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database'), datallowconn FROM pg_database "
            "WHERE EXISTS (SELECT 1 FROM unnest(%s::text[]) p WHERE starts_with(datname, p))", (list(prefixes),))}


def counts(lab, db):
    with connect(lab, db) as conn:
        return {t: conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(
            psycopg.sql.Identifier(*t.split(".", 1)))).fetchone()[0] for t in SEED_COUNTS}


def make_legacy_target(lab, name):
    with connect(lab) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    with connect(lab, name) as conn:
        conn.execute("CREATE TABLE legacy (id int); INSERT INTO legacy VALUES (1)")


def restore_args(conn_params, src, target_db, **options):
    return dict(conn_params, src=str(src), target_db=target_db, **options)


def test_swap_restore_from_manifest_keeps_old_database(lab, pg_conn_params, manifest, target):
    make_legacy_target(lab, target)
    session = psycopg.connect(host=lab.primary.host, port=lab.primary.port, user=lab.admin_user,
                              password=lab.admin_password, dbname=target, autocommit=True)
    res = run_module("pg_restore", restore_args(pg_conn_params, manifest, target))
    assert not res.failed and res.changed, res
    assert res["row_counts"] == SEED_COUNTS and res["verified_against"] == "manifest row counts"
    assert counts(lab, target) == SEED_COUNTS
    old = res["old_db"]
    assert old.startswith(f"{target}_old_")
    with connect(lab, old) as conn:
        assert conn.execute("SELECT count(*) FROM legacy").fetchone()[0] == 1
    found = databases(lab, target)
    assert set(found) == {target, old}, found  # the scratch database became the target
    assert f"sha256={res['checksum']['sha256']}" in found[target][0]
    assert found[target][1] and found[old][1], "both databases accept connections again"
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")  # the session on the old target was ended by the swap
    session.close()
    assert res["commands"][0][0].endswith("/pg_restore")
    assert pg_conn_params["login_password"] not in str(res)


def test_restore_sql_gz_made_by_pg_dump_gzip_and_sha256sum(lab, pg_conn_params, seeded_db, target,  # noqa: F811
                                                           tmp_path):
    dump = shell_dump(lab, seeded_db, tmp_path / "by_hand")
    args = restore_args(pg_conn_params, dump, target)
    # The second task loads the plain dump again into the now existing target: in one transaction, so the
    # failure ("already exists") leaves the first restore intact.
    created, again = run_playbook([{"ops.runbooks.pg_restore": args},
                                   {"ops.runbooks.pg_restore": dict(args, mode="in_place")}]).results
    assert not created.failed and created.changed, created
    assert created["src"] == {"path": str(dump), "format": "plain", "checksum_from": f"{dump}.sha256"}
    assert created["old_db"] is None and created["row_counts"] == SEED_COUNTS
    assert created["verified_against"].startswith("restore finished without errors")
    assert again.failed and "already exists" in again["msg"], again
    assert set(databases(lab, target)) == {target}
    assert counts(lab, target) == SEED_COUNTS


def test_in_place_restore_replaces_the_dumps_objects(lab, pg_conn_params, manifest, target):
    args = restore_args(pg_conn_params, manifest, target, mode="in_place")
    first = run_module("pg_restore", args)
    assert not first.failed and first.changed and first["plan"][0] == f"create database {target}", first
    with connect(lab, target) as conn:
        conn.execute("DELETE FROM orders; CREATE TABLE mine (id int)")
    second = run_module("pg_restore", args)
    assert not second.failed and second.changed and "--clean" in second["commands"][0], second
    assert counts(lab, target) == SEED_COUNTS
    with connect(lab, target) as conn:  # objects the dump does not have are left alone
        assert conn.execute("SELECT to_regclass('public.mine') IS NOT NULL").fetchone()[0]
    assert set(databases(lab, target)) == {target}


def test_checksum_mismatch_refuses_before_touching_the_server(lab, pg_conn_params, seeded_db, manifest,  # noqa: F811
                                                              target, tmp_path):
    dump = shell_dump(lab, seeded_db, tmp_path / "by_hand")
    with open(dump, "ab") as f:
        f.write(b"\0")
    archive = Path(manifest).with_suffix("")  # the .dump beside the manifest
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    tasks = [{"ops.runbooks.pg_restore": restore_args(pg_conn_params, src, target)} for src in (dump, manifest)]
    run = run_playbook(tasks + [dict(tasks[0], check_mode=True)])
    for res in run.results:
        assert res.failed and "does not match" in res["msg"] and "nothing was changed" in res["msg"], res
    assert run.results[0]["actual_sha256"] != run.results[0]["expected_sha256"]
    assert databases(lab, target) == {}


def test_row_count_mismatch_rolls_back_and_leaves_target_alone(lab, pg_conn_params, manifest, target):
    make_legacy_target(lab, target)
    data = json.loads(Path(manifest).read_text())
    data["row_counts"]["public.orders"] += 1
    Path(manifest).write_text(json.dumps(data))
    res = run_module("pg_restore", restore_args(pg_conn_params, manifest, target))
    assert res.failed and "failed verification" in res["msg"], res
    assert res["differences"] == [{"table": "public.orders", "expected": SEED_COUNTS["public.orders"] + 1,
                                   "actual": SEED_COUNTS["public.orders"]}]
    assert res["rolled_back"] == [f"create database {res['applied'][0].split()[-1]}"]
    assert set(databases(lab, target)) == {target}
    with connect(lab, target) as conn:
        assert conn.execute("SELECT count(*) FROM legacy").fetchone()[0] == 1


def test_four_steps_with_skip_if_identical(lab, pg_conn_params, manifest, target):
    args = restore_args(pg_conn_params, manifest, target, skip_if_identical=True)
    check1, apply1, check2, apply2 = four_steps("pg_restore", args)
    assert check1.changed and check1["plan"] and not check1["already_restored"], check1
    assert check1["diff"]["before"]["target"] == {"exists": False, "restored_sha256": None}
    assert apply1.changed and apply1["row_counts"] == SEED_COUNTS, apply1
    assert not check2.changed and check2["already_restored"] and check2["plan"] == [], check2
    assert not apply2.changed and apply2["already_restored"] and apply2["queries"] == [], apply2
    assert set(databases(lab, target)) == {target}
    # Without skip_if_identical a restore is an action: it runs again and keeps the previous copy.
    again = run_module("pg_restore", dict(args, skip_if_identical=False))
    assert again.changed and again["old_db"], again
    assert set(databases(lab, target)) == {target, again["old_db"]}


def test_check_mode_changes_nothing(lab, pg_conn_params, manifest, target):
    make_legacy_target(lab, target)
    before = databases(lab, target)
    res = run_module("pg_restore", restore_args(pg_conn_params, manifest, target, keep_old=False), check=True,
                     diff=True)
    assert not res.failed and res.changed, res
    assert res["checksum"]["verified"] and "check mode" in res["checksum"]["note"]
    scratch = res["scratch_db"]
    assert res["queries"][0].startswith(f'CREATE DATABASE "{scratch}"')
    assert f'ALTER DATABASE "{target}" ALLOW_CONNECTIONS false' in res["queries"]
    assert f'ALTER DATABASE "{scratch}" RENAME TO "{target}"' in res["queries"]
    assert res["queries"][-1].startswith("DROP DATABASE IF EXISTS") and res["old_db"] is None
    assert res["diff"]["before"]["target"] == {"exists": True, "restored_sha256": None}
    assert res["diff"]["after"]["target"]["restored_sha256"] == res["checksum"]["sha256"]
    assert f"--dbname={scratch}" in res["commands"][0]
    assert databases(lab, target) == before
    assert pg_conn_params["login_password"] not in str(res)


def test_bad_input(lab, pg_conn_params, seeded_db, manifest, target, tmp_path):  # noqa: F811
    unchecked = tmp_path / "unchecked.dump"
    unchecked.write_bytes(Path(manifest).with_suffix("").read_bytes())
    base = restore_args(pg_conn_params, manifest, target)
    bad = [
        (dict(base, db=seeded_db, target_db="x; DROP TABLE orders"), "target_db"),
        (dict(base, target_db='a"b'), "target_db"),
        (dict(base, db=seeded_db, target_db=seeded_db), "db"),
        (dict(base, src=str(tmp_path / "missing.dump")), "src"),
        (dict(base, mode="merge"), "mode"),
        (dict(base, swap_timeout="later"), "swap_timeout"),
        (dict(base, pg_bin_dir=str(tmp_path)), "pg_bin_dir"),
        ({k: v for k, v in base.items() if k != "target_db"}, "target_db"),
        (dict(base, src=str(unchecked)), "no manifest"),
    ]
    names = (target, seeded_db, "x", "a")
    before = databases(lab, *names)
    run = run_playbook([{"ops.runbooks.pg_restore": args} for args, _ in bad])
    for (args, needle), res in zip(bad, run.results, strict=True):
        assert res.failed, (args, res)
        assert needle in res["msg"], (needle, res["msg"])
    assert databases(lab, *names) == before
    with connect(lab, seeded_db) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == SEED_COUNTS["public.orders"]
    assert pg_conn_params["login_password"] not in run.stdout
