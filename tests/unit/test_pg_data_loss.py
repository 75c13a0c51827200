"""pg_data_loss rejects bad input before it connects (the connection options point at a closed port)."""

from __future__ import annotations

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_data_loss import read_ledger
from tests.helpers.ansible import run_module
from tests.helpers.servers import closed_port


def test_ledger_keys_are_distinct_in_order(tmp_path):
    ledger = tmp_path / "acknowledged.txt"
    ledger.write_text("3\n1\n\n3\n 2 \n")
    assert read_ledger(str(ledger)) == ["3", "1", "2"]


@pytest.mark.parametrize("args, param", [
    (dict(table="items; DROP TABLE items", keys=["1"]), "table"),
    (dict(table="items", key_column='id" OR 1=1 --', keys=["1"]), "key_column"),
    (dict(table="items", ledger="/nonexistent/acknowledged.txt"), "ledger"),
    (dict(table="items"), "ledger"),  # one of ledger, keys
    (dict(table="items", keys=["1"], ledger="/etc/hostname"), "keys"),  # not both
    (dict(table="items", keys=["1"], max_lost_rows=-1), "max_lost_rows"),
    (dict(table="items", keys="1", max_lost_rows="none"), "max_lost_rows"),
])
def test_bad_input_names_the_parameter(args, param):
    result = run_module("pg_data_loss", dict(args, login_host="127.0.0.1", login_port=closed_port()))
    assert result.failed and param in result["msg"]
    assert "connection" not in result["msg"].lower()
