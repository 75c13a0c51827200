# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a dump into a database: checksum first, then restore beside the target and swap names.

The dump's checksum is checked before anything is asked of the server, so a corrupt or substituted file
never reaches it. In ``swap`` mode the target is only touched by two renames, after the restored copy
proved itself; until then the old database serves on, and it is kept afterwards (``keep_old``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from ansible_collections.ops.runbooks.plugins.module_utils._clients import pgdump
from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import (
    REQUIREMENT,
    PostgresClient,
    sql,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    postgres_connection_argspec,
    verify_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import wait_until
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step

_TARGET = """
SELECT datallowconn AS allow_connections, shobj_description(oid, 'pg_database') AS comment
  FROM pg_database WHERE datname = %s
"""
_TERMINATE = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              "WHERE datname = %s AND pid <> pg_backend_pid()")
CHECK_MODE_NOTE = "checksum verified in check mode as well: it only reads the file"


def derived_name(target, suffix):
    # PostgreSQL silently truncates names to 63 characters; cut the target's part so the suffix survives.
    return target[:63 - len(suffix)] + suffix


def _rename(old, new):
    return sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new))


def _allow_connections(db, allow):
    return sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(sql.Identifier(db), sql.Literal(allow))


class PgRestore(Procedure):
    requirements = (REQUIREMENT,)

    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                src=dict(type="path", required=True),
                target_db=dict(type="str", required=True),
                mode=dict(type="str", default="swap", choices=["swap", "in_place"]),
                keep_old=dict(type="bool", default=True),
                skip_if_identical=dict(type="bool", default=False),
                swap_timeout=dict(type="str", default="60s"),
                pg_bin_dir=dict(type="path"),
            )
        )
        return spec.merge(postgres_connection_argspec()).merge(verify_argspec())

    def validate(self):
        p = self.params
        self.target = p["target_db"]
        validate.identifier(self.target, "target_db")
        if self.target == p["db"]:
            raise ParameterError("db", f"the module connects to {p['db']} to create, rename and drop databases, so it "
                                       "cannot be target_db; connect to another database such as postgres")
        if not os.path.isfile(p["src"]):
            raise ParameterError("src", f"{p['src']} not found; give a pg_backup manifest (.json) or a dump file")
        self.swap_timeout = validate.duration_seconds(p["swap_timeout"], "swap_timeout")
        if p["pg_bin_dir"]:
            pgdump.check_bin_dir(p["pg_bin_dir"], ("pg_restore", "psql"))
        self.client = self.own(PostgresClient(p))
        self.source = None
        self.row_counts, self.verified_against = None, None

    def checked_source(self):
        """The dump ``src`` designates, after its checksum matched. Runs before the first connection, and in
        check mode too since it only reads the file."""
        source = pgdump.resolve_source(self.params["src"])
        path = source["path"]
        if not os.path.isfile(path):
            raise RunbookError(f"restore into {self.target} refused: dump {path} named by {source['checksum_from']} "
                               "not found; nothing was changed")
        actual = pgdump.sha256_file(path)
        if actual != source["sha256"]:
            raise RunbookError(f"restore of {path} into {self.target} refused: its sha256 {actual} does not match "
                               f"{source['sha256']} from {source['checksum_from']}; the file is damaged or not the one "
                               "recorded, nothing was changed", expected_sha256=source["sha256"], actual_sha256=actual)
        return source

    def observe(self):
        if self.source is None:
            self.source = self.checked_source()
            tool = "pg_restore" if self.source["format"] == "custom" else "psql"
            self.bin_dir = pgdump.bin_dir_for(self.client.server_version_num, self.params["pg_bin_dir"], (tool,))
        rows = self.client.query(_TARGET, (self.target,))
        self.target_allows_connections = rows[0]["allow_connections"] if rows else True
        return {"target": {"exists": bool(rows),
                           "restored_sha256": pgdump.marker_sha256(rows[0]["comment"]) if rows else None}}

    # -- plan ----------------------------------------------------------------------------------------
    def sql_step(self, description, *statements, **details):
        return Step(description, lambda: [self.client.execute(s) for s in statements],
                    queries=[self.client.render(s) for s in statements], **details)

    def plan(self, before):
        p, target, exists = self.params, self.target, before["target"]["exists"]
        if p["skip_if_identical"] and before["target"]["restored_sha256"] == self.source["sha256"]:
            return []
        now = datetime.now(UTC)
        stamp = now.strftime("%Y%m%d%H%M%S")
        swap = p["mode"] == "swap"
        self.restore_db = derived_name(target, f"_restore_{stamp}") if swap else target
        self.old_db = derived_name(target, f"_old_{stamp}") if swap and exists else None
        steps = []
        self.creates_restore_db = swap or not exists
        if self.creates_restore_db:
            create = pgdump.create_database_sql(self.restore_db, (self.source["manifest"] or {}).get("locale"))
            steps.append(self.sql_step(f"create database {self.restore_db}", create,
                                       undo=lambda: self.client.execute(pgdump.drop_database_sql(self.restore_db))))
        argv = pgdump.restore_command(self.bin_dir, p, self.restore_db, self.source["format"], self.source["path"],
                                      clean=not swap and exists)
        steps.append(Step(f"restore {self.source['path']} into {self.restore_db}", lambda: pgdump.run_restore(
            argv, pgdump.tool_env(p, self.restore_db), self.source["format"], self.source["path"]), command=argv))
        steps.append(Step(f"count rows in {self.restore_db} and compare them with the manifest", self.verify_counts))
        steps.append(self.sql_step(f"record the restored dump's sha256 on {self.restore_db}", pgdump.marker_sql(
            self.restore_db, self.source["sha256"], os.path.basename(self.source["path"]), now.isoformat())))
        if self.old_db:
            steps.append(Step(f"close {target} to new sessions, end its sessions and rename it to {self.old_db}",
                              self.retire_target, undo=self.reinstate_target, queries=[
                                  self.client.render(_allow_connections(target, False)),
                                  self.client.render(_TERMINATE, (target,)),
                                  self.client.render(_rename(target, self.old_db))]))
        if swap:
            steps.append(self.sql_step(f"rename {self.restore_db} to {target}", _rename(self.restore_db, target),
                                       undo=lambda: self.client.execute(_rename(target, self.restore_db))))
        if self.old_db and p["keep_old"]:
            steps.append(self.sql_step(f"keep {self.old_db}, open to sessions again",
                                       _allow_connections(self.old_db, self.target_allows_connections)))
        elif self.old_db:
            steps.append(self.sql_step(f"drop {self.old_db} (keep_old: false)", pgdump.drop_database_sql(self.old_db)))
        return steps

    # -- apply ---------------------------------------------------------------------------------------
    def verify_counts(self):
        with PostgresClient(self.params, db=self.restore_db) as restored:
            self.row_counts = pgdump.row_counts(restored)
        expected = (self.source["manifest"] or {}).get("row_counts")
        if expected is None:
            self.verified_against = "restore finished without errors (no row counts recorded for this dump)"
            return self.row_counts
        differences = pgdump.count_differences(expected, self.row_counts)
        if differences:
            where = (f"{self.restore_db} is dropped and {self.target} left as it was" if self.creates_restore_db
                     else f"the restore is already committed in {self.target}")
            raise RunbookError(f"restore of {self.source['path']} into {self.restore_db} failed verification: row "
                               f"counts differ from the manifest ({where}); check the restore's output and the "
                               "server log", differences=differences)
        self.verified_against = "manifest row counts"
        return self.row_counts

    def retire_target(self):
        self.client.execute(_allow_connections(self.target, False))

        def renamed():
            # Sessions end asynchronously after pg_terminate_backend; the rename fails until they are gone.
            self.client.query(_TERMINATE, (self.target,))
            self.client.execute(_rename(self.target, self.old_db))
            return True

        try:
            what = f"the sessions on {self.target} to end so it can be renamed to {self.old_db} (swap_timeout)"
            wait_until(renamed, self.swap_timeout, 0.2, what=what)
        except RunbookError:
            self.client.execute(_allow_connections(self.target, self.target_allows_connections))
            raise

    def reinstate_target(self):
        self.client.execute(_rename(self.old_db, self.target))
        self.client.execute(_allow_connections(self.target, self.target_allows_connections))

    def verify(self, before, applied):
        marker = pgdump.marker_sha256(self.client.scalar(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (self.target,)))
        if marker != self.source["sha256"]:
            raise RunbookError(f"restore into {self.target} could not be confirmed: the database does not carry the "
                               f"restored dump's sha256 (found {marker}); check for a concurrent rename")

    def rollback(self, before, applied, error):
        undone = []
        for step in reversed(applied):
            if step.details.get("undo"):
                step.details["undo"]()
                undone.append(step.describe())
        return undone

    # -- results -------------------------------------------------------------------------------------
    def project(self, before, steps):
        return {"target": {"exists": True, "restored_sha256": self.source["sha256"]}}

    def report(self, before, after, steps):
        swap, old = self.params["mode"] == "swap", getattr(self, "old_db", None)
        return {
            "target_db": self.target,
            "mode": self.params["mode"],
            "src": {k: self.source[k] for k in ("path", "format", "checksum_from")},
            "checksum": {"sha256": self.source["sha256"], "verified": True,
                         **({"note": CHECK_MODE_NOTE} if self.check_mode else {})},
            "already_restored": not steps,
            "scratch_db": self.restore_db if steps and swap else None,
            "old_db": old if old and self.params["keep_old"] else None,
            "row_counts": self.row_counts,
            "verified_against": self.verified_against,
            "queries": [q for s in steps for q in s.details.get("queries", [])],
            "commands": [s.details["command"] for s in steps if "command" in s.details],
        }
