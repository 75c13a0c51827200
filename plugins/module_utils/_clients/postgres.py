# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL data-plane client on psycopg 3.

Builds connections from the shared connection options, runs SQL composed with ``psycopg.sql`` (never
string formatting of user input), records the statements it ran, and turns driver errors into RunbookError.
"""

from __future__ import annotations

import traceback

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError

try:
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row

    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None
except ImportError:
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()
    sql = None

# ``sql`` is re-exported so procedures compose statements without importing psycopg themselves.
__all__ = ["sql", "PostgresClient", "REQUIREMENT", "connection_kwargs", "libpq_env", "HAS_PSYCOPG"]

REQUIREMENT = ("psycopg", HAS_PSYCOPG, PSYCOPG_IMPORT_ERROR)
APPLICATION_NAME = "ops.runbooks"


def connection_kwargs(params, db=None, application_name=APPLICATION_NAME):
    """psycopg keyword arguments from the shared connection options (see doc fragment ``postgres``)."""
    host = params.get("login_unix_socket") or params.get("login_host") or None
    kwargs = {
        "host": host,
        "port": params.get("login_port") or 5432,
        "user": params.get("login_user") or None,
        "password": params.get("login_password") or None,
        "dbname": db or params.get("db") or "postgres",
        "sslmode": params.get("ssl_mode") or "prefer",
        "sslrootcert": params.get("ca_cert"),
        "sslcert": params.get("ssl_cert"),
        "sslkey": params.get("ssl_key"),
        "connect_timeout": params.get("connect_timeout") or 10,
        "application_name": application_name,
    }
    return {k: v for k, v in kwargs.items() if v is not None}


def libpq_env(params, db=None):
    """Environment for libpq command-line tools (pg_dump, pg_restore, psql): the password never goes on argv."""
    kw = connection_kwargs(params, db)
    env = {"PGHOST": kw.get("host"), "PGPORT": str(kw["port"]), "PGUSER": kw.get("user"),
           "PGPASSWORD": kw.get("password"), "PGDATABASE": kw["dbname"], "PGSSLMODE": kw["sslmode"],
           "PGSSLROOTCERT": kw.get("sslrootcert"), "PGSSLCERT": kw.get("sslcert"), "PGSSLKEY": kw.get("sslkey"),
           "PGCONNECT_TIMEOUT": str(kw["connect_timeout"]), "PGAPPNAME": APPLICATION_NAME}
    return {k: v for k, v in env.items() if v}


class PostgresClient:
    """A lazily opened autocommit connection. Use as a context manager or call ``close()``."""

    def __init__(self, params, db=None, application_name=APPLICATION_NAME):
        self.kwargs = connection_kwargs(params, db, application_name)
        self._conn = None
        self.executed = []

    @property
    def label(self):
        return f"postgres {self.kwargs.get('host') or 'localhost'}:{self.kwargs['port']}/{self.kwargs['dbname']}"

    @property
    def conn(self):
        if self._conn is None:
            try:
                self._conn = psycopg.connect(autocommit=True, row_factory=dict_row, **self.kwargs)
            except psycopg.Error as exc:
                raise RunbookError(
                    f"{self.label}: cannot connect: {_first_line(exc)}; check login_host, login_port, login_user, "
                    "login_password and that the server is running",
                ) from None
        return self._conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def render(self, statement, args=None):
        """The statement as text, for ``queries`` in results and check-mode plans."""
        if isinstance(statement, str):
            return statement if args is None else f"{statement} -- {list(args)}"
        return statement.as_string(self.conn)

    def _run(self, statement, args, fetch, record):
        try:
            cur = self.conn.execute(statement, args)
            rows = cur.fetchall() if fetch and cur.description else []
        except psycopg.Error as exc:
            raise RunbookError(f"{self.label}: {_first_line(exc)} (while running: {self.render(statement)})",
                               sqlstate=getattr(exc, "sqlstate", None)) from None
        if record:
            self.executed.append(self.render(statement))
        return rows

    def query(self, statement, args=None):
        return self._run(statement, args, fetch=True, record=False)

    def scalar(self, statement, args=None):
        rows = self._run(statement, args, fetch=True, record=False)
        return next(iter(rows[0].values())) if rows else None

    def execute(self, statement, args=None):
        """Run a statement that changes something; it is recorded in ``executed``."""
        return self._run(statement, args, fetch=True, record=True)

    @property
    def server_version_num(self):
        return self.conn.info.server_version

    @property
    def backend_pid(self):
        return self.conn.info.backend_pid

    def in_recovery(self):
        return bool(self.scalar("SELECT pg_is_in_recovery()"))


def _first_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]
