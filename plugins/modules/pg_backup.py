#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_backup
short_description: Back up a PostgreSQL database with pg_dump, verify it and apply retention
version_added: 0.1.0
description:
  - Dumps the database O(db) with C(pg_dump) into the directory O(dest), computing the file's SHA-256 while
    the dump streams (the file is never read twice unless O(verify=checksum) asks for it), and writes a JSON
    manifest beside it with the database, format, size, sha256, start and end times, server and pg_dump versions,
    the database's encoding and locale, and the exact row count of every table.
  - The row counts and the dump read the same snapshot (exported by a REPEATABLE READ transaction held open
    for the whole dump), so they match the file exactly even while the database is being written to.
  - The dump is written as C(<file>.partial) and renamed into place, with its manifest, only after pg_dump
    succeeded and the verification passed. When pg_dump exits non-zero the partial file is removed, even if
    it already holds data. Retention runs last, so a failed backup never prunes a good one.
  - Dumps and manifests are created with mode 0600. The password reaches pg_dump through the environment
    (C(PGPASSWORD)), never its command line, and is never written to the manifest or the results.
  - Uses the client tools of the server's major version from C(/usr/lib/postgresql/<major>/bin) unless
    O(pg_bin_dir) is set.
  - A backup is an action, not a state, so every run reports C(changed=true). In check mode nothing is
    written (not even O(dest)); the module returns the command line it would run, the file it would write
    and what retention would prune.
extends_documentation_fragment:
  - ops.runbooks.postgres
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff lists the backups of O(db) in O(dest) before and after.
options:
  dest:
    description:
      - Directory for the dump and its manifest. Created with mode 0700 when missing.
      - Files are named C(<db>_<UTC timestamp>.dump) (custom) or C(<db>_<UTC timestamp>.sql.gz) (plain); the
        manifest is the dump's name plus C(.json).
    type: path
    required: true
  format:
    description:
      - V(custom) is pg_dump's compressed archive format, restored with C(pg_restore).
      - V(plain) is SQL compressed with gzip (C(.sql.gz)), restored with C(psql).
    type: str
    default: custom
    choices: [custom, plain]
  verify:
    description:
      - V(none) trusts pg_dump's exit code.
      - V(checksum) reads the file back and compares its SHA-256 with the one computed while writing.
      - V(list) reads the archive's table of contents with C(pg_restore --list) (O(format=custom) only).
      - V(restore) restores the dump into a scratch database C(ops_verify_<stamp>_<db>), compares the row
        count of every table with the counts taken in the dump's snapshot and drops the scratch database.
        Needs room for a second copy of the database on the server.
      - A backup that fails verification is deleted and the task fails.
    type: str
    default: checksum
    choices: [none, checksum, list, restore]
  keep_last:
    description:
      - Keep this many backups of O(db) in O(dest), the new one included; older ones are deleted with their
        manifests. Only files that have a pg_backup manifest for O(db) are ever deleted.
      - With O(keep_days) too, a backup is deleted only when neither option keeps it.
    type: int
  keep_days:
    description:
      - Keep the backups of O(db) in O(dest) started less than this many days ago; older ones are deleted with
        their manifests.
    type: int
  row_counts:
    description:
      - Count the rows of every table in the dump's snapshot and record them in the manifest; M(ops.runbooks.pg_restore)
        checks a restore against them. Counting reads every table once more; switch it off for very large
        databases. Required by O(verify=restore).
    type: bool
    default: true
  lock_wait_timeout:
    description:
      - How long pg_dump (and the row counts) wait for the shared table locks at the start before failing,
        instead of queueing behind a long-running DDL statement forever.
      - Seconds, or a number with a unit such as V(30s), V(5min).
    type: str
    default: 5min
  pg_bin_dir:
    description:
      - Directory holding C(pg_dump) (and C(pg_restore) and C(psql) for O(verify=list) or O(verify=restore)).
      - Defaults to C(/usr/lib/postgresql/<server major version>/bin).
    type: path
notes:
  - O(db) names the database to back up.
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Nightly backup of the shop database, keeping a week
  ops.runbooks.pg_backup:
    login_host: db.example.com
    login_user: backup
    login_password: "{{ vault_pg_backup_password }}"
    db: shop
    dest: /var/backups/postgresql
    keep_days: 7
    keep_last: 3

- name: Backup before a migration, proven restorable
  ops.runbooks.pg_backup:
    db: shop
    dest: /var/backups/postgresql/pre-migration
    verify: restore
  register: backup

- name: Plain SQL backup (gzip) for another team
  ops.runbooks.pg_backup:
    db: shop
    dest: /srv/exports
    format: plain
"""

RETURN = r"""
path:
  description: The dump file written (in check mode, the one that would be written).
  returned: always
  type: str
  sample: /var/backups/postgresql/shop_20250101T020000.123Z.dump
manifest:
  description: The manifest written beside the dump (in check mode, the one that would be written).
  returned: always
  type: str
  sample: /var/backups/postgresql/shop_20250101T020000.123Z.dump.json
format:
  description: The dump format.
  returned: always
  type: str
  sample: custom
command:
  description:
    - The pg_dump command line. It carries no password; the snapshot is exported when the backup starts.
  returned: always
  type: list
  elements: str
  sample: [/usr/lib/postgresql/15/bin/pg_dump, --host=db.example.com, --port=5432, --username=backup,
           --no-password, --dbname=shop, --format=custom, --lock-wait-timeout=300000,
           "--snapshot=<exported at run time>"]
size:
  description: Size of the dump in bytes (null in check mode).
  returned: always
  type: int
  sample: 104857600
sha256:
  description: SHA-256 of the dump file, computed while it was written (null in check mode).
  returned: always
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
row_counts:
  description: Rows per table (C(schema.table)) in the dump's snapshot; null in check mode or with O(row_counts=false).
  returned: always
  type: dict
  sample: {public.orders: 1200, public.customers: 300}
dump_seconds:
  description: How long the dump itself took (null in check mode).
  returned: always
  type: float
verification:
  description:
    - The verification outcome. C(method) is always there; after a run C(ok) is true (a failed verification
      fails the task), V(list) adds C(toc_entries), V(restore) adds C(scratch_db) and C(tables_compared).
  returned: always
  type: dict
  sample: {method: restore, ok: true, scratch_db: ops_verify_20250101T020000123Z_shop, tables_compared: 12}
pruned:
  description: Backups deleted by retention (their manifests went with them); empty in check mode.
  returned: always
  type: list
  elements: str
would_prune:
  description: Backups retention would delete (check mode only, otherwise empty).
  returned: always
  type: list
  elements: str
queries:
  description: SQL statements that change something (the scratch database of O(verify=restore)); in check mode,
    the statements that would run.
  returned: always
  type: list
  elements: str
plan:
  description: Human-readable list of the steps.
  returned: always
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_backup import PgBackup


def main():
    run_procedure(PgBackup)


if __name__ == "__main__":
    main()
