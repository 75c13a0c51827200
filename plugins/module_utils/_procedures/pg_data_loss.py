# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Count the committed rows a server is missing: the recovery point actually achieved after a failover.

The reference is the list of keys whose commit was acknowledged to a client (a ledger the writer kept, one key
per line), so the loss is counted rather than estimated from replication lag.
"""

from __future__ import annotations

import os

from ansible_collections.ops.runbooks.plugins.module_utils._clients.postgres import REQUIREMENT, PostgresClient
from ansible_collections.ops.runbooks.plugins.module_utils._common import validate
from ansible_collections.ops.runbooks.plugins.module_utils._common.argspec import (
    ArgumentSpec,
    postgres_connection_argspec,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError, RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._common.procedure import Procedure

SAMPLE = 20
# Keys are sent as one text array and compared as text, so any key type works and nothing is interpolated.
_MISSING = """
SELECT k.key FROM unnest(%s::text[]) AS k(key)
 WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE t.{column}::text = k.key)
 ORDER BY k.key
"""


def read_ledger(path, param="ledger"):
    """The distinct keys of a ledger file (one per line, blank lines ignored), in first-seen order."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except OSError as exc:
        raise ParameterError(param, f"cannot read {path}: {exc.strerror}; give the file the writer appended "
                                    "acknowledged keys to") from None
    return list(dict.fromkeys(line for line in lines if line))


class PgDataLoss(Procedure):
    requirements = (REQUIREMENT,)

    @classmethod
    def argument_spec(cls):
        return postgres_connection_argspec().merge(ArgumentSpec(
            dict(
                table=dict(type="str", required=True),
                key_column=dict(type="str", default="id", no_log=False),
                ledger=dict(type="path"),
                keys=dict(type="list", elements="str", no_log=False),
                max_lost_rows=dict(type="int"),
            ),
            required_one_of=[("ledger", "keys")],
            mutually_exclusive=[("ledger", "keys")],
        ))

    def validate(self):
        p = self.params
        self.table = validate.identifier(p["table"], "table", max_parts=2)
        self.column = validate.identifier(p["key_column"], "key_column")[0]
        if p["max_lost_rows"] is not None:
            validate.positive(p["max_lost_rows"], "max_lost_rows", allow_zero=True)
        if p["ledger"] is not None and not os.path.isfile(p["ledger"]):
            raise ParameterError("ledger", f"{p['ledger']} is not a file; give the file the writer appended "
                                           "acknowledged keys to")
        self.diff_mode = False  # read-only
        self.client = self.own(PostgresClient(p))

    def observe(self):
        keys = read_ledger(self.params["ledger"]) if self.params["ledger"] else list(dict.fromkeys(self.params["keys"]))
        table = ".".join(f'"{part}"' for part in self.table)
        try:
            missing = [row["key"] for row in self.client.query(
                _MISSING.format(table=table, column=f'"{self.column}"'), (keys,))]
        except RunbookError as exc:
            raise RunbookError(f"counting missing rows in {'.'.join(self.table)} failed: {exc.msg}; check table "
                               "and key_column") from None
        return {"committed": len(keys), "lost_rows": len(missing), "lost_sample": missing[:SAMPLE],
                "present": len(keys) - len(missing)}

    def report(self, before, after, steps):
        limit = self.params["max_lost_rows"]
        return dict(before, table=".".join(self.table), max_lost_rows=limit,
                    rpo_met=None if limit is None else before["lost_rows"] <= limit)
