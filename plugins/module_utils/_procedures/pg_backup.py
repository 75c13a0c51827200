# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Back up one database with pg_dump: stream + hash in one pass, manifest, verification, retention.

The dump is written under ``<file>.partial`` and only renamed into place, with its manifest, once pg_dump
succeeded and the requested verification passed; retention runs last. So a failed run leaves no file that
looks like a backup and never prunes an older good one.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

from ansible_collections.ops.runbooks.plugins.module_utils._clients import pgdump
from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import REQUIREMENT, PostgresClient
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    postgres_connection_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import Stopwatch
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure, Step

_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_SERVER = """
SELECT current_setting('server_version') AS server_version, pg_encoding_to_char(encoding) AS encoding,
       datcollate AS collate, datctype AS ctype
  FROM pg_database WHERE datname = current_database()
"""
SNAPSHOT_PLACEHOLDER = "<exported at run time>"


def select_prune(backups, now, keep_last=None, keep_days=None):
    """The existing backups retention deletes, given that a new one was just made.

    A backup is kept while it is among the ``keep_last`` newest (the new one counts) or younger than
    ``keep_days``; with both set it is pruned only when neither rule keeps it.
    """
    if keep_last is None and keep_days is None:
        return []
    newest_first = sorted(backups, key=lambda b: b["started_at"], reverse=True)
    prune = []
    for rank, backup in enumerate(newest_first, start=2):
        kept_by_count = keep_last is not None and rank <= keep_last
        kept_by_age = keep_days is not None and now - backup["started_at"] < timedelta(days=keep_days)
        if not (kept_by_count or kept_by_age):
            prune.append(backup)
    return prune


class PgBackup(Procedure):
    requirements = (REQUIREMENT,)

    @classmethod
    def argument_spec(cls):
        spec = ArgumentSpec(
            dict(
                dest=dict(type="path", required=True),
                format=dict(type="str", default="custom", choices=["custom", "plain"]),
                verify=dict(type="str", default="checksum", choices=["none", "checksum", "list", "restore"]),
                keep_last=dict(type="int"),
                keep_days=dict(type="int"),
                row_counts=dict(type="bool", default=True),
                lock_wait_timeout=dict(type="str", default="5min"),
                pg_bin_dir=dict(type="path"),
            )
        )
        return spec.merge(postgres_connection_argspec())

    def validate(self):
        p = self.params
        self.db = p["db"]
        if not self.db:
            raise ParameterError("db", "name the database to back up")
        if os.path.exists(p["dest"]) and not os.path.isdir(p["dest"]):
            raise ParameterError("dest", f"{p['dest']} exists and is not a directory; give a directory for the backups")
        validate.positive(p["keep_last"], "keep_last")
        validate.positive(p["keep_days"], "keep_days")
        self.lock_wait_ms = int(validate.duration_seconds(p["lock_wait_timeout"], "lock_wait_timeout") * 1000)
        if p["verify"] == "list" and p["format"] != "custom":
            raise ParameterError("verify", "list reads a custom-format archive's table of contents; with format plain "
                                           "use checksum or restore")
        if p["verify"] == "restore" and not p["row_counts"]:
            raise ParameterError("verify", "restore compares row counts with the source; set row_counts: true or use "
                                           "verify: checksum")
        self.tools = ("pg_dump", "pg_restore", "psql") if p["verify"] in ("list", "restore") else ("pg_dump",)
        if p["pg_bin_dir"]:
            pgdump.check_bin_dir(p["pg_bin_dir"], self.tools)
        self.client = self.own(PostgresClient(p))
        self.server = None

    # -- observe -------------------------------------------------------------------------------------
    def existing_backups(self):
        """Backups of this database in dest, found through their manifests."""
        dest, found = self.params["dest"], []
        for name in sorted(os.listdir(dest)) if os.path.isdir(dest) else []:
            if not name.endswith(".json"):
                continue
            try:
                manifest = pgdump.read_manifest(os.path.join(dest, name))
                started = datetime.fromisoformat(manifest["started_at"])
            except (RunbookError, KeyError, TypeError, ValueError):
                continue  # not one of ours: never pruned
            # A manifest naming a file elsewhere (``../x``) must not make retention delete outside dest.
            if manifest.get("database") == self.db and os.path.basename(manifest["file"]) == manifest["file"]:
                found.append({"file": manifest["file"], "manifest": name, "started_at": started})
        return found

    def observe(self):
        if self.server is None:
            self.server = self.client.query(_SERVER)[0]
            self.server["server_version_num"] = self.client.server_version_num
            self.bin_dir = pgdump.bin_dir_for(self.server["server_version_num"], self.params["pg_bin_dir"], self.tools)
        self.backups = self.existing_backups()
        return {"backups": [b["file"] for b in self.backups]}

    # -- plan ----------------------------------------------------------------------------------------
    def dump_command(self, snapshot):
        p = self.params
        argv = [os.path.join(self.bin_dir, "pg_dump"), *pgdump.connection_args(p, self.db),
                f"--format={p['format']}", f"--lock-wait-timeout={self.lock_wait_ms}", f"--snapshot={snapshot}"]
        # Plain output is gzip-compressed by pg_dump itself, as if piped through gzip.
        return argv + (["--compress=6"] if p["format"] == "plain" else [])

    def plan(self, before):
        p = self.params
        self.now = datetime.now(UTC)
        stamp = self.now.strftime("%Y%m%dT%H%M%S.") + f"{self.now.microsecond // 1000:03d}Z"
        safe_db = _UNSAFE_IN_FILE_NAME.sub("_", self.db)
        self.path = os.path.join(p["dest"], f"{safe_db}_{stamp}{pgdump.EXTENSIONS[p['format']]}")
        self.partial = f"{self.path}.partial"
        self.command = self.dump_command(SNAPSHOT_PLACEHOLDER)
        self.prune = select_prune(self.backups, self.now, p["keep_last"], p["keep_days"])
        self.dumped, self.verification = {}, {"method": p["verify"]}
        # Stamp first: truncating to PostgreSQL's 63 characters cuts the database name, never the stamp.
        self.scratch = f"ops_verify_{stamp.replace('.', '')}_{safe_db}"[:63]
        self.planned_queries = [self.client.render(pgdump.create_database_sql(self.scratch, self.server)),
                                self.client.render(pgdump.drop_database_sql(self.scratch))] \
            if p["verify"] == "restore" else []
        steps = []
        if not os.path.isdir(p["dest"]):
            steps.append(Step(f"create directory {p['dest']} (mode 0700)", lambda: os.makedirs(p["dest"], 0o700)))
        steps.append(Step(f"dump database {self.db} ({p['format']} format) to {self.path}", self.dump))
        if p["verify"] != "none":
            steps.append(Step(f"verify the dump ({p['verify']})", self.verify_dump))
        steps.append(Step(f"move the dump into place and write {pgdump.manifest_path(self.path)}", self.publish))
        steps += [Step(f"delete backup {b['file']} and its manifest (retention)",
                       lambda b=b: self.delete_backup(b), file=b["file"]) for b in self.prune]
        return steps

    # -- apply ---------------------------------------------------------------------------------------
    def dump(self):
        started, watch = datetime.now(UTC), Stopwatch()
        # Row counts and pg_dump read one snapshot, exported by a REPEATABLE READ transaction held open for
        # the whole dump, so the counts describe exactly the rows in the file even while writes go on.
        snap = self.own(PostgresClient(self.params, application_name="ops.runbooks pg_backup snapshot"))
        snap.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snap.query("SELECT set_config('lock_timeout', %s, true)", (f"{self.lock_wait_ms}ms",))
        snapshot = snap.scalar("SELECT pg_export_snapshot()")
        counts = pgdump.row_counts(snap) if self.params["row_counts"] else None
        argv = self.dump_command(snapshot)
        size, sha256 = pgdump.stream_dump(argv, pgdump.tool_env(self.params, self.db), self.partial)
        snap.query("COMMIT")
        snap.close()
        self.dumped = {"size": size, "sha256": sha256, "row_counts": counts, "seconds": watch.elapsed,
                       "started_at": started.isoformat(), "finished_at": datetime.now(UTC).isoformat()}
        return self.dumped

    def verify_dump(self):
        method, outcome = self.params["verify"], {}
        if method == "checksum":
            actual = pgdump.sha256_file(self.partial)
            if actual != self.dumped["sha256"]:
                raise RunbookError(f"verify of {self.path} failed: sha256 read back {actual} differs from "
                                   f"{self.dumped['sha256']} written; check the disk under {self.params['dest']}")
        elif method == "list":
            outcome["toc_entries"] = pgdump.list_archive(self.bin_dir, self.partial)
        else:
            outcome = {"scratch_db": self.scratch, "tables_compared": len(self.restore_and_count())}
        self.verification = {"method": method, "ok": True, **outcome}
        return self.verification

    def restore_and_count(self):
        """Restore into a scratch database, compare its row counts with the dump's, drop it whatever happens."""
        p = self.params
        scratch = self.scratch
        self.client.execute(pgdump.create_database_sql(scratch, self.server))
        try:
            argv = pgdump.restore_command(self.bin_dir, p, scratch, p["format"], self.partial)
            pgdump.run_restore(argv, pgdump.tool_env(p, scratch), p["format"], self.partial)
            with PostgresClient(p, db=scratch) as restored:
                counts = pgdump.row_counts(restored)
        finally:
            self.client.execute(pgdump.drop_database_sql(scratch))
        differences = pgdump.count_differences(self.dumped["row_counts"], counts)
        if differences:
            raise RunbookError(f"verify of {self.path} failed: the restored copy's row counts differ from the "
                               "source's; the backup was discarded, run it again and check the server logs",
                               differences=differences)
        return counts

    def publish(self):
        p = self.params
        os.replace(self.partial, self.path)
        manifest = {
            "tool": pgdump.MANIFEST_TOOL, "manifest_version": pgdump.MANIFEST_VERSION,
            "database": self.db, "file": os.path.basename(self.path), "format": p["format"],
            "size": self.dumped["size"], "sha256": self.dumped["sha256"],
            "started_at": self.dumped["started_at"], "finished_at": self.dumped["finished_at"],
            "server": f"{p['login_unix_socket'] or p['login_host'] or 'localhost'}:{p['login_port']}",
            "server_version": self.server["server_version"], "server_version_num": self.server["server_version_num"],
            "pg_dump_version": pgdump.tool_version(self.bin_dir, "pg_dump"),
            "locale": {k: self.server[k] for k in ("encoding", "collate", "ctype")},
            "row_counts": self.dumped["row_counts"], "verification": self.verification,
        }
        pgdump.write_manifest(pgdump.manifest_path(self.path), manifest)

    def delete_backup(self, backup):
        dest = self.params["dest"]
        return [name for name in (backup["file"], backup["manifest"]) if pgdump.remove(os.path.join(dest, name))]

    def rollback(self, before, applied, error):
        return [f"removed {self.partial}"] if pgdump.remove(self.partial) else []

    # -- results -------------------------------------------------------------------------------------
    def project(self, before, steps):
        pruned = {b["file"] for b in self.prune}
        return {"backups": [f for f in before["backups"] if f not in pruned] + [os.path.basename(self.path)]}

    def report(self, before, after, steps):
        pruned = [b["file"] for b in self.prune]
        return {
            "path": self.path,
            "manifest": pgdump.manifest_path(self.path),
            "format": self.params["format"],
            "command": self.command,
            "size": self.dumped.get("size"),
            "sha256": self.dumped.get("sha256"),
            "row_counts": self.dumped.get("row_counts"),
            "dump_seconds": self.dumped.get("seconds"),
            "verification": self.verification if not self.check_mode else {"method": self.params["verify"]},
            "pruned": pruned if not self.check_mode else [],
            "would_prune": pruned if self.check_mode else [],
            "queries": self.planned_queries if self.check_mode else self.client.executed,
        }
