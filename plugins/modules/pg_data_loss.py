#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_data_loss
short_description: Count committed rows missing on a PostgreSQL server, the data a failover lost
version_added: 0.2.0
description:
  - Takes the keys of rows whose commit was acknowledged to clients, from a ledger file (one key per line,
    what a writer appends after each successful commit) or a list, and counts those the server does not have
    in O(table). After a failover, run it against the new primary; the count is the recovery point actually
    achieved, counted rather than estimated from replication lag.
  - Compares keys as text, so integer, UUID and text keys all work. The keys are sent as one array parameter.
  - Never changes anything.
extends_documentation_fragment:
  - ops.runbooks.postgres
  - ops.runbooks.attributes.INFO_MODULE
options:
  table:
    description:
      - The table the rows were written to, V(name) or V(schema.name).
    type: str
    required: true
  key_column:
    description:
      - The column holding the key the ledger lists.
    type: str
    default: id
  ledger:
    description:
      - A file on the managed host with one acknowledged key per line; blank lines and repeats are ignored.
      - Exactly one of O(ledger) and O(keys) is required.
    type: path
  keys:
    description:
      - The acknowledged keys as a list.
    type: list
    elements: str
  max_lost_rows:
    description:
      - The recovery point objective in rows; when set, RV(rpo_met) says whether RV(lost_rows) is within it.
    type: int
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Count the acknowledged orders the new primary does not have
  ops.runbooks.pg_data_loss:
    login_host: db-secondary.example.com
    login_user: runbook_admin
    login_password: "{{ vault_pg_password }}"
    db: shop
    table: public.orders
    key_column: order_id
    ledger: /var/lib/writer/acknowledged.txt
    max_lost_rows: 0
  register: loss
"""

RETURN = r"""
committed:
  description: Distinct keys in the ledger (acknowledged commits).
  returned: always
  type: int
  sample: 1520
present:
  description: How many of them the server has.
  returned: always
  type: int
  sample: 1517
lost_rows:
  description: How many it does not have.
  returned: always
  type: int
  sample: 3
lost_sample:
  description: Up to 20 of the missing keys, sorted as text.
  returned: always
  type: list
  elements: str
  sample: ["1518", "1519", "1520"]
table:
  description: The table checked.
  returned: always
  type: str
max_lost_rows:
  description: O(max_lost_rows) as given.
  returned: always
  type: int
rpo_met:
  description: Whether RV(lost_rows) is at most O(max_lost_rows); null without it.
  returned: always
  type: bool
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_data_loss import PgDataLoss


def main():
    run_procedure(PgDataLoss)


if __name__ == "__main__":
    main()
