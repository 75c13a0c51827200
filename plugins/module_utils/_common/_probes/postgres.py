# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL probe: connect with the collection's connection options and, optionally, run a query that must
return true (for example C(SELECT NOT pg_is_in_recovery())), in a read-only transaction."""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import (
    HAS_PSYCOPG,
    REQUIREMENT,
    connection_kwargs,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.base import Probe, ProbeFailed, port
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import postgres_connection_argspec
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError

if HAS_PSYCOPG:
    import psycopg

_CONNECTION = postgres_connection_argspec().argument_spec


class PostgresProbe(Probe):
    type = "postgres"
    # The connection options of the ``postgres`` doc fragment, without their aliases: ``host`` and ``port``
    # are fields of their own in a target list and mean the same as login_host and login_port here.
    options = dict(
        {name: {k: v for k, v in spec.items() if k not in ("default", "aliases")}
         for name, spec in _CONNECTION.items()},
        host=dict(type="str"), port=dict(type="int"), query=dict(type="str"),
    )
    defaults = {name: spec.get("default") for name, spec in _CONNECTION.items()}
    requirement = REQUIREMENT

    def __init__(self, target, where, *args):
        for alias, option in (("host", "login_host"), ("port", "login_port")):
            if target.get(alias) is not None:
                if target.get(option) is not None:
                    raise ParameterError(f"{where}.{alias}", f"give either {alias} or {option}, not both")
                target = dict(target, **{option: target[alias]})
        super().__init__(target, where, *args)

    def validate(self):
        port(self.fields["login_port"], self.param("login_port"))

    @property
    def address(self):
        f = self.fields
        return f"{f['login_unix_socket'] or f['login_host'] or 'localhost'}:{f['login_port']}/{f['db']}"

    async def check(self):
        kwargs = connection_kwargs(self.fields, application_name="ops.runbooks probe")
        async with await psycopg.AsyncConnection.connect(**kwargs) as conn:
            detail = {"server_version": conn.info.server_version}
            if self.fields["query"] is None:
                return detail
            # A probe only looks: the query runs in a read-only transaction (ignored under autocommit, so
            # this connection is not in autocommit) that is rolled back.
            await conn.set_read_only(True)
            cursor = await conn.execute(self.fields["query"])
            row = await cursor.fetchone() if cursor.description else None
            await conn.rollback()
        value = row[0] if row else None
        detail["result"] = value if isinstance(value, (bool, int, float, str, type(None))) else str(value)
        if value is not True:
            raise ProbeFailed(f"query returned {detail['result']!r}, expected true", **detail)
        return detail
