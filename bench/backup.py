# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: plain ``pg_dump -Fc -f FILE`` against the pg_backup module on a database of at least 1 GB.

    python bench/backup.py [--db bench_backup] [--size-gb 1] [--rounds 3] [--generate-only]

The database is generated on the lab primary the first time (server-side INSERT ... SELECT, a few minutes)
and reused afterwards. Each round runs, in turn, pg_dump alone, the pg_backup procedure in-process and the
pg_backup module through ansible-playbook, so a slow minute on the machine hits all three alike. Prints the
median seconds of each and their ratio to pg_dump (target: <= 1.10). Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / ".collections"), str(ROOT)]

from lab import pg as pglab  # noqa: E402

BIN = pglab.bindir()
WORDS = ("invoice order customer refund shipment warehouse parcel delayed approved pending cancelled "
         "payment card transfer account balance ledger audit review ticket support escalated resolved "
         "priority normal urgent region north south east west central daily weekly monthly report "
         "export import retry timeout success failure user admin guest session token").split()
BATCH_ROWS = 1_000_000

SCHEMA = """
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, region text,
                       created_at timestamptz NOT NULL, notes text);
CREATE TABLE events (id bigint PRIMARY KEY, account_id bigint NOT NULL, kind text NOT NULL,
                     created_at timestamptz NOT NULL, amount numeric(12,2), payload text);
CREATE TABLE audit_log (id bigint PRIMARY KEY, event_id bigint, actor text, detail text);
"""

# Random words and hex make text that compresses about as well as real application data (roughly 3:1),
# so pg_dump's compression does real work.
_SENTENCE = "array_to_string(ARRAY(SELECT w[1 + (random() * {n})::int] FROM generate_series(1, {k} + g %% 3)), ' ')"
FILL = {
    "accounts": """INSERT INTO accounts SELECT g, initcap(w[1 + (random() * {n})::int]) || ' ' || md5(g::text),
                     'user' || g || '@example.' || w[1 + (random() * {n})::int], w[1 + (random() * 4)::int + 28],
                     now() - random() * interval '900 days', {sentence8}
                   FROM generate_series(%(lo)s, %(hi)s) g, (SELECT %(words)s::text[] AS w) words""",
    "events": """INSERT INTO events SELECT g, 1 + (random() * 999999)::int, w[1 + (random() * 9)::int],
                   now() - random() * interval '365 days', round((random() * 10000)::numeric, 2),
                   {sentence12} || ' ' || md5(random()::text)
                 FROM generate_series(%(lo)s, %(hi)s) g, (SELECT %(words)s::text[] AS w) words""",
    "audit_log": """INSERT INTO audit_log SELECT g, g, w[1 + (random() * {n})::int], {sentence8}
                    FROM generate_series(%(lo)s, %(hi)s) g, (SELECT %(words)s::text[] AS w) words""",
}


def _fill_sql(table):
    n = len(WORDS) - 1
    return FILL[table].format(n=n, sentence8=_SENTENCE.format(n=n, k=8), sentence12=_SENTENCE.format(n=n, k=12))


def connect(lab, dbname="postgres"):
    return psycopg.connect(host=lab.primary.host, port=lab.primary.port, user=lab.admin_user,
                           password=lab.admin_password, dbname=dbname, autocommit=True)


def ensure_database(lab, name, size_bytes):
    """Create and fill ``name`` unless it exists. Built under another name and renamed at the end, so an
    interrupted run never leaves a half-filled database that a later run would take as ready."""
    with connect(lab) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            size = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()[0]
            print(f"database {name} exists ({size / 1e9:.2f} GB), reusing it", flush=True)
            return size
        building = f"{name}_building"
        conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{building}"')
    watch = time.monotonic()
    with connect(lab, building) as conn:
        conn.execute(SCHEMA)
        batch = 0
        while True:
            lo, hi = batch * BATCH_ROWS + 1, (batch + 1) * BATCH_ROWS
            for table in FILL:
                conn.execute(_fill_sql(table), {"lo": lo, "hi": hi, "words": WORDS})
            batch += 1
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            print(f"  generated {hi:,} rows per table, {size / 1e9:.2f} GB, {time.monotonic() - watch:.0f}s",
                  flush=True)
            if size >= size_bytes:
                break
        conn.execute("VACUUM ANALYZE")
    with connect(lab) as conn:
        conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    return size


def time_pg_dump(lab, db, workdir):
    """The baseline: what an operator would type."""
    target = workdir / "baseline.dump"
    env = dict(os.environ, PGPASSWORD=lab.admin_password)
    watch = time.monotonic()
    subprocess.run([str(BIN / "pg_dump"), "-h", lab.primary.host, "-p", str(lab.primary.port), "-U", lab.admin_user,
                    "-Fc", "-f", str(target), db], env=env, check=True)
    seconds = time.monotonic() - watch
    size = target.stat().st_size
    target.unlink()
    return seconds, size


def module_args(lab, db, dest):
    return {"login_host": lab.primary.host, "login_port": lab.primary.port, "login_user": lab.admin_user,
            "login_password": lab.admin_password, "db": db, "dest": str(dest)}


def time_procedure(lab, db, workdir):
    """The pg_backup procedure in this process, with the module's defaults."""
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_backup import PgBackup

    dest = workdir / "procedure"
    with patch_module_args(module_args(lab, db, dest)):
        procedure = PgBackup(PgBackup.argument_spec().create_ansible_module())
    watch = time.monotonic()
    try:
        result = procedure.run()
    finally:
        procedure.close()
    seconds = time.monotonic() - watch
    shutil.rmtree(dest)
    return seconds, result


def time_ansible(lab, db, workdir):
    """The pg_backup module through ansible-playbook (the tests' runner; includes ansible's own start-up)."""
    from tests.helpers.ansible import run_module

    dest = workdir / "ansible"
    watch = time.monotonic()
    result = run_module("pg_backup", module_args(lab, db, dest))
    seconds = time.monotonic() - watch
    shutil.rmtree(dest, ignore_errors=True)
    if result.failed or "duration_seconds" not in result:
        raise SystemExit(f"pg_backup through ansible-playbook failed: {result}")
    return seconds, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="bench_backup")
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--generate-only", action="store_true")
    args = parser.parse_args()
    lab = pglab.Lab.load(pglab.DEFAULT_DIR) or pglab.up(pglab.DEFAULT_DIR)
    size = ensure_database(lab, args.db, int(args.size_gb * 1024**3))
    if args.generate_only:
        return
    times = {"pg_dump -Fc -f": [], "procedure in-process": [], "module via ansible-playbook": []}
    with tempfile.TemporaryDirectory(prefix="ops-runbooks-bench-") as tmp:
        workdir = Path(tmp)
        for n in range(1, args.rounds + 1):
            base, dump_size = time_pg_dump(lab, args.db, workdir)
            proc, result = time_procedure(lab, args.db, workdir)
            play, task = time_ansible(lab, args.db, workdir)
            for key, value in zip(times, (base, proc, play), strict=True):
                times[key].append(value)
            print(f"round {n}: pg_dump {base:.2f}s ({dump_size / 1e6:.0f} MB) | procedure {proc:.2f}s "
                  f"(dump {result['dump_seconds']:.2f}s, {result['size'] / 1e6:.0f} MB) | ansible-playbook "
                  f"{play:.2f}s (module reported {task['duration_seconds']:.2f}s)", flush=True)
    baseline = statistics.median(times["pg_dump -Fc -f"])
    print(f"\ndatabase {args.db}: {size / 1e9:.2f} GB; median of {args.rounds} rounds; pg_backup defaults "
          "(custom format, row counts, verify: checksum)")
    for key, values in times.items():
        print(f"  {key:<28} {statistics.median(values):7.2f}s  ratio {statistics.median(values) / baseline:.3f}")


if __name__ == "__main__":
    main()
