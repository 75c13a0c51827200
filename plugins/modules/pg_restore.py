#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_restore
short_description: Restore a PostgreSQL dump after checking its checksum, by default beside the target and swapped in
version_added: 0.1.0
description:
  - Restores the dump O(src) into the database O(target_db), creating it when it does not exist.
  - O(src) is a manifest written by M(ops.runbooks.pg_backup) (C(.json)), a dump with such a manifest beside
    it, or a dump with a C(<dump>.sha256) file beside it in C(sha256sum) format (C(<hex>  <file name>)), as
    teams produce with C(pg_dump | gzip > db.sql.gz) and C(sha256sum db.sql.gz > db.sql.gz.sha256).
    Custom-format archives are restored with C(pg_restore), plain SQL (gzip-compressed or not) with C(psql).
  - The dump's SHA-256 is checked first. On a mismatch, or when no checksum is available, the module refuses
    before connecting to the server, so nothing is created.
  - With O(mode=swap) (the default) the dump is restored into a new database C(<target_db>_restore_<stamp>),
    whose row counts are compared with the ones the manifest recorded (without them, a restore that finished
    without errors is accepted). Then the target is closed to new sessions, its sessions are ended, it is
    renamed C(<target_db>_old_<stamp>) (kept unless O(keep_old=false)) and the restored database takes its
    name. Any failure before the renames drops the new database and leaves the target untouched; a failure
    during them renames everything back.
  - With O(mode=in_place) the dump is restored into the existing target in one transaction (custom format
    with C(--clean --if-exists)), so a failed restore changes nothing. A plain dump only loads into a target
    that lacks its objects.
  - The restored database is marked with a comment holding the dump's SHA-256 (C(COMMENT ON DATABASE)).
  - A restore is an action, so every run reports C(changed=true), unless O(skip_if_identical=true) and the
    target's marker shows the same dump is already restored; then nothing is done and C(changed=false).
  - In check mode the module verifies the checksum (it only reads the file) and returns the plan, the SQL
    statements and the command lines, and changes nothing.
  - The password reaches pg_restore and psql through the environment, never their command line.
extends_documentation_fragment:
  - ops.runbooks.postgres
  - ops.runbooks.verify
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows whether the target exists and the sha256 of the dump last restored into it.
options:
  src:
    description:
      - The pg_backup manifest (C(.json)) or the dump to restore.
    type: path
    required: true
  target_db:
    description:
      - The database to restore into. A plain name (letters, digits, C(_), C($)).
      - It must differ from O(db), the database the module connects to.
    type: str
    required: true
  mode:
    description:
      - V(swap) restores beside the target and swaps names once the copy is verified.
      - V(in_place) restores into the target itself, replacing the objects the dump contains.
    type: str
    default: swap
    choices: [swap, in_place]
  keep_old:
    description:
      - With O(mode=swap), keep the previous target as C(<target_db>_old_<stamp>); V(false) drops it.
    type: bool
    default: true
  skip_if_identical:
    description:
      - Do nothing (C(changed=false)) when the target's restore marker holds the SHA-256 of O(src).
      - Lets a playbook restore a known dump idempotently.
    type: bool
    default: false
  swap_timeout:
    description:
      - How long to keep ending the target's sessions until it can be renamed (O(mode=swap)).
      - Seconds, or a number with a unit such as V(30s), V(5min).
    type: str
    default: 60s
  pg_bin_dir:
    description:
      - Directory holding C(pg_restore) and C(psql). Defaults to C(/usr/lib/postgresql/<server major version>/bin).
    type: path
notes:
  - O(mode=swap) needs room for a second copy of the database on the server while it runs, and the kept
    C(_old_) databases until they are dropped.
  - Sessions connected to the target are ended during the swap; applications must reconnect.
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Restore last night's backup over the staging database
  ops.runbooks.pg_restore:
    login_host: staging-db.example.com
    login_user: ops
    login_password: "{{ vault_pg_password }}"
    src: /var/backups/postgresql/shop_20250101T020000.123Z.dump.json
    target_db: shop

- name: Load a dump made with pg_dump | gzip and sha256sum, once
  ops.runbooks.pg_restore:
    src: /srv/imports/reporting.sql.gz
    target_db: reporting
    skip_if_identical: true
    keep_old: false
"""

RETURN = r"""
verification:
  description: Result of the O(verify) probes after the change (per-probe details); absent when nothing was probed.
  returned: when O(verify) is set and something changed
  type: dict
target_db:
  description: The database restored into.
  returned: always
  type: str
mode:
  description: The restore mode.
  returned: always
  type: str
  sample: swap
src:
  description: The dump restored, its format and the file its expected checksum came from.
  returned: always
  type: dict
  sample: {path: /srv/imports/reporting.sql.gz, format: plain, checksum_from: /srv/imports/reporting.sql.gz.sha256}
checksum:
  description: The dump's SHA-256, verified before anything else (in check mode too, with a C(note) saying so).
  returned: always
  type: dict
  sample: {sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, verified: true}
already_restored:
  description: True when O(skip_if_identical) found the same dump already restored (nothing was done).
  returned: always
  type: bool
scratch_db:
  description: The database the dump was (or would be) restored into before the swap; null otherwise.
  returned: always
  type: str
  sample: shop_restore_20250101120000
old_db:
  description: The previous target, kept under this name (null when there was none or O(keep_old=false)).
  returned: always
  type: str
  sample: shop_old_20250101120000
row_counts:
  description: Rows per table (C(schema.table)) in the restored database; null in check mode or when already restored.
  returned: always
  type: dict
  sample: {public.orders: 1200}
verified_against:
  description: What the restored database was checked against; null in check mode or when already restored.
  returned: always
  type: str
  sample: manifest row counts
queries:
  description: The SQL statements run (in check mode, the ones that would run).
  returned: always
  type: list
  elements: str
commands:
  description: The pg_restore or psql command lines run (or that would run); they carry no password.
  returned: always
  type: list
  elements: list
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
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_restore import PgRestore


def main():
    run_procedure(PgRestore)


if __name__ == "__main__":
    main()
