# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_dump, pg_restore and psql for the backup runbooks, and the manifest written beside every dump.

The password reaches the tools only through the environment (``libpq_env``), so every command line built
here can be shown in plans and results as it is. Dumps and manifests are created with mode 0600 from the
start (``os.open``), never chmod-ed afterwards, so no other user can read a half-written backup.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import tempfile

from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import (
    connection_kwargs,
    libpq_env,
    sql,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError

PG_LIB = "/usr/lib/postgresql"
CHUNK = 1024 * 1024
MANIFEST_TOOL = "ops.runbooks.pg_backup"
MANIFEST_VERSION = 1
EXTENSIONS = {"custom": ".dump", "plain": ".sql.gz"}
RESTORE_MARKER = "ops.runbooks restore"
_MARKER_SHA = re.compile(r"\bsha256=([0-9a-f]{64})\b")
_SHA256_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_CUSTOM_MAGIC = b"PGDMP"
_GZIP_MAGIC = b"\x1f\x8b"
_STDERR_LINES = 5

# Tables whose rows pg_dump writes by default: ordinary and unlogged tables (partitions included, their
# partitioned parents not, so no row is counted twice), minus system schemas and extension members.
_TABLES = """
SELECT n.nspname AS schema, c.relname AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""


# -- binaries ------------------------------------------------------------------------------------------
def check_bin_dir(path, tools, param="pg_bin_dir"):
    missing = [t for t in tools if not os.access(os.path.join(path, t), os.X_OK)]
    if missing:
        raise ParameterError(param, f"{path} has no executable {', '.join(missing)}; point it at a PostgreSQL "
                                    f"bin directory such as {PG_LIB}/15/bin")
    return path


def bin_dir_for(server_version_num, override=None, tools=("pg_dump",)):
    """The client tools matching the server's major version: an older pg_dump refuses a newer server and a
    newer one writes archives older pg_restore cannot read."""
    if override:
        return override
    major = server_version_num // 10000
    path = f"{PG_LIB}/{major}/bin"
    if not all(os.access(os.path.join(path, t), os.X_OK) for t in tools):
        raise RunbookError(f"{', '.join(tools)} for PostgreSQL {major} not found in {path}: install the "
                           f"PostgreSQL {major} client package or set pg_bin_dir")
    return path


def tool_version(bin_dir, tool):
    out = subprocess.run([os.path.join(bin_dir, tool), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def connection_args(params, db):
    """The non-secret connection settings as arguments, so a shown command line says where it connects."""
    kw = connection_kwargs(params, db)
    args = [f"--host={kw['host']}"] if kw.get("host") else []
    args.append(f"--port={kw['port']}")
    if kw.get("user"):
        args.append(f"--username={kw['user']}")
    return args + ["--no-password", f"--dbname={db}"]


def tool_env(params, db):
    # PG* variables of the calling environment would silently redirect or authenticate the tools.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(libpq_env(params, db))
    return env


def _failure(tool, rc, stderr_file):
    stderr_file.seek(0)
    lines = stderr_file.read().decode("utf-8", "replace").strip().splitlines()
    return f"{tool} exited with {rc}: {' | '.join(lines[-_STDERR_LINES:]) or 'no message'}"


# -- dump ----------------------------------------------------------------------------------------------
def create_private(path):
    """A new file only its owner can read (fails if ``path`` exists)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def stream_dump(argv, env, path):
    """Run pg_dump writing to stdout; write its output to ``path`` and hash it in the same pass.

    Returns ``(size, sha256)``. When pg_dump fails the partial file is removed, whatever it already holds.
    """
    digest, size = hashlib.sha256(), 0
    try:
        with create_private(path) as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)
            with proc.stdout:
                while chunk := proc.stdout.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            rc = proc.wait()
            if rc:
                raise RunbookError(f"backup to {path} failed: {_failure('pg_dump', rc, err)}; the partial file was "
                                   "removed", command=argv)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        remove(path)
        raise
    return size, digest.hexdigest()


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_archive(bin_dir, path):
    """Number of entries in a custom-format archive's table of contents (``pg_restore --list``)."""
    argv = [os.path.join(bin_dir, "pg_restore"), "--list", path]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RunbookError(f"pg_restore --list {path} failed ({out.returncode}): {out.stderr.strip()}; the archive "
                           "is unreadable", command=argv)
    return sum(1 for line in out.stdout.splitlines() if line and not line.startswith(";"))


def remove(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


# -- restore -------------------------------------------------------------------------------------------
def detect_format(path):
    with open(path, "rb") as f:
        head = f.read(5)
    return "custom" if head == _CUSTOM_MAGIC else "plain"


def restore_command(bin_dir, params, db, fmt, path, clean=False):
    """The command restoring ``path`` into ``db``. ``clean`` (in place): replace existing objects, all in one
    transaction so a failure leaves the database as it was."""
    if fmt == "custom":
        argv = [os.path.join(bin_dir, "pg_restore"), *connection_args(params, db), "--exit-on-error"]
        return argv + (["--clean", "--if-exists", "--single-transaction"] if clean else []) + [path]
    # psql reads the SQL from stdin, fed by run_restore (decompressing a .sql.gz on the way).
    argv = [os.path.join(bin_dir, "psql"), *connection_args(params, db), "--no-psqlrc", "--quiet",
            "--set=ON_ERROR_STOP=1"]
    return argv + (["--single-transaction"] if clean else []) + ["--file=-"]


def run_restore(argv, env, fmt, path):
    with tempfile.TemporaryFile() as err:
        if fmt == "custom":
            rc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, check=False).returncode
        else:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, env=env)
            opener = gzip.open if _is_gzip(path) else open
            try:
                with proc.stdin, opener(path, "rb") as src:
                    while chunk := src.read(CHUNK):
                        proc.stdin.write(chunk)
            except BrokenPipeError:
                pass  # psql stopped at the first error (ON_ERROR_STOP); its exit code and stderr say which
            rc = proc.wait()
        if rc:
            raise RunbookError(f"restore of {path} failed: {_failure(os.path.basename(argv[0]), rc, err)}",
                               command=argv)


def _is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def row_counts(client):
    """Exact row count of every table pg_dump dumps, as ``{"schema.table": n}``."""
    count = sql.SQL("SELECT count(*) FROM {}")
    return {f"{t['schema']}.{t['name']}": client.scalar(count.format(sql.Identifier(t["schema"], t["name"])))
            for t in client.query(_TABLES)}


def count_differences(expected, actual):
    """Tables of ``expected`` whose count differs. Tables only in ``actual`` are not the dump's (an in-place
    restore leaves the target's other tables alone), so they are not compared."""
    return [{"table": t, "expected": n, "actual": actual.get(t)} for t, n in sorted(expected.items())
            if actual.get(t) != n]


def create_database_sql(name, locale=None):
    """CREATE DATABASE from template0, so objects added to template1 cannot clash with the dump's."""
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
    for option, key in (("ENCODING", "encoding"), ("LC_COLLATE", "collate"), ("LC_CTYPE", "ctype")):
        if (locale or {}).get(key):
            statement += sql.SQL(" {} {}").format(sql.SQL(option), sql.Literal(locale[key]))
    return statement


def drop_database_sql(name):
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))


def marker_sql(db, sha256, source_name, restored_at):
    text = f"{RESTORE_MARKER}: sha256={sha256} src={source_name} at={restored_at}"
    return sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(db), sql.Literal(text))


def marker_sha256(comment):
    m = _MARKER_SHA.search(comment or "") if (comment or "").startswith(RESTORE_MARKER) else None
    return m.group(1) if m else None


# -- manifest and sources ------------------------------------------------------------------------------
def manifest_path(dump_path):
    return f"{dump_path}.json"


def write_manifest(path, data):
    """Written under a temporary name and renamed, so a manifest is never seen half-written."""
    partial = f"{path}.partial"
    try:
        with create_private(partial) as f:
            f.write(json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        remove(partial)
        raise


def read_manifest(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise RunbookError(f"cannot read manifest {path}: {exc}; pass the dump itself as src if the manifest is "
                           "lost") from None
    if not isinstance(data, dict) or data.get("tool") != MANIFEST_TOOL:
        raise RunbookError(f"{path} is not a pg_backup manifest (no \"tool\": \"{MANIFEST_TOOL}\")")
    missing = [k for k in ("file", "sha256", "format") if not data.get(k)]
    if missing:
        raise RunbookError(f"manifest {path} lacks {', '.join(missing)}; it cannot vouch for a dump")
    return data


def read_sha256_file(path, dump_name):
    """The checksum for ``dump_name`` from ``sha256sum`` output (``<hex>  <name>``, ``*`` for binary mode).
    A single line is taken whatever its name (``sha256sum < file`` writes ``-``)."""
    with open(path, encoding="utf-8") as f:
        entries = [m.groups() for m in map(_SHA256_LINE.match, f.read().splitlines()) if m]
    if len(entries) == 1:
        return entries[0][0].lower()
    for digest, name in entries:
        if os.path.basename(name) == dump_name:
            return digest.lower()
    raise RunbookError(f"{path} holds no sha256sum line for {dump_name}; regenerate it with sha256sum {dump_name}")


def resolve_source(src):
    """What ``src`` (a manifest, a dump with a manifest beside it, or a dump with ``<dump>.sha256``) restores.

    Returns a dict: ``path``, ``format``, ``sha256`` (expected), ``checksum_from``, ``manifest`` (or None).
    """
    if src.endswith(".json"):
        manifest = read_manifest(src)
        path = os.path.join(os.path.dirname(src), manifest["file"])
        return {"path": path, "format": manifest["format"], "sha256": manifest["sha256"].lower(),
                "checksum_from": src, "manifest": manifest}
    if os.path.exists(manifest_path(src)):
        return resolve_source(manifest_path(src))
    sums = f"{src}.sha256"
    if not os.path.exists(sums):
        raise RunbookError(f"restore of {src} refused: no manifest ({manifest_path(src)}) or checksum file ({sums}) "
                           f"beside it; create one with: sha256sum {os.path.basename(src)} > {sums}")
    return {"path": src, "format": detect_format(src), "sha256": read_sha256_file(sums, os.path.basename(src)),
            "checksum_from": sums, "manifest": None}
