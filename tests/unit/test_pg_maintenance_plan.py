"""pg_maintenance: thresholds, bloat arithmetic and planning, without a server."""

from __future__ import annotations

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError
from ansible_collections.ops.runbooks.plugins.module_utils._procedures import pg_maintenance as pm

# pgstatindex of the pkey of 20000 ints after deleting 90% of the rows, before and after VACUUM (PostgreSQL 15);
# a fresh build of the 2000 remaining entries is 8 pages (meta, root, 6 leaves) = 65536 bytes.
BEFORE_VACUUM = dict(index_size=466944, internal_pages=1, leaf_pages=55, empty_pages=0, deleted_pages=0,
                     avg_leaf_density=89.5)
AFTER_VACUUM = dict(BEFORE_VACUUM, avg_leaf_density=9.21)
FRESH = dict(index_size=65536, internal_pages=1, leaf_pages=6, empty_pages=0, deleted_pages=0, avg_leaf_density=82.03)


def table(name="orders", live=2000, dead=18000, mods=0, analyzed=True, oid=1):
    return {"oid": oid, "schema": "public", "table": name, "name": f"public.{name}", "n_live_tup": live,
            "n_dead_tup": dead, "n_mod_since_analyze": mods, "last_vacuum": None,
            "last_analyze": "2026-01-01" if analyzed else None, "size_bytes": 925696}


def index(name, tbl, bloat, after_vacuum=None, exclusion=False, method="pgstatindex"):
    return {"name": f"public.{name}", "schema": "public", "index": name, "oid": 99, "table": tbl["name"],
            "table_oid": tbl["oid"], "size_bytes": 466944, "exclusion": exclusion, "bloat_method": method,
            "bloat_bytes": bloat, "bloat_bytes_after_vacuum": bloat if after_vacuum is None else after_vacuum}


@pytest.mark.parametrize("live, dead, ratio, floor, expected", [
    (2000, 18000, 0.1, 50, True),
    (1000, 100, 0.1, 50, False),   # 9.1% < 10%
    (10, 40, 0.1, 50, False),      # below the floor of dead tuples
    (0, 0, 0.0, 0, False),         # zero thresholds still leave a clean table alone
    (5, 1, 0.0, 0, True),
])
def test_needs_vacuum(live, dead, ratio, floor, expected):
    assert pm.needs_vacuum(table(live=live, dead=dead), ratio, floor) is expected


def test_needs_analyze():
    assert pm.needs_analyze(table(mods=1))
    assert pm.needs_analyze(table(analyzed=False))
    assert not pm.needs_analyze(table())


def test_pgstatindex_bloat_predicts_what_vacuum_leaves():
    fresh = FRESH["index_size"]
    predicted = pm.pgstatindex_bloat(BEFORE_VACUUM, 90, 8192, live_fraction=0.1)
    assert predicted == BEFORE_VACUUM["index_size"] - fresh
    assert pm.pgstatindex_bloat(AFTER_VACUUM, 90, 8192) == predicted
    assert pm.pgstatindex_bloat(BEFORE_VACUUM, 90, 8192) < 2 * 8192  # as it is, the index is full
    assert pm.pgstatindex_bloat(FRESH, 90, 8192) == 0
    empty = dict(FRESH, index_size=8192, internal_pages=0, leaf_pages=0, avg_leaf_density=float("nan"))
    assert pm.pgstatindex_bloat(empty, 90, 8192) == 0


def test_estimated_bloat():
    # int4 keys: 20-byte entries, 366 to a 90%-full leaf; 2000 rows need 6 leaves + root + meta.
    assert pm.estimated_bloat(466944, 2000, 4, 90, 8192) == 466944 - 8 * 8192
    assert pm.estimated_bloat(65536, 2000, 4, 90, 8192) == 0
    assert pm.estimated_bloat(466944, 2000, None, 90, 8192) is None


class FakeModule:
    check_mode = True
    _diff = False

    def __init__(self, **params):
        spec = pm.PgMaintenance.argument_spec().argument_spec
        self.params = {k: v.get("default") for k, v in spec.items()}
        self.params.update(params)


class FakeClient:
    server_version_num = 150000

    @staticmethod
    def render(statement):
        return statement.as_string(None)


def planned(before, version=150000, **params):
    proc = pm.PgMaintenance(FakeModule(**params))
    proc.validate()
    proc.client = FakeClient()
    proc.client.server_version_num = version
    return [s.details["object"]["statement"] for s in proc.plan(before)], proc.warnings


def test_plan_orders_work_per_table_and_uses_bloat_after_vacuum():
    dirty, clean = table(mods=38000), table("clean", dead=0, oid=2)
    before = {"tables": [dirty, clean],
              "indexes": [index("orders_pkey", dirty, bloat=0, after_vacuum=401408),
                          index("clean_pkey", clean, bloat=100000)]}
    statements, _ = planned(before, operations=["vacuum", "analyze", "reindex"], min_bloat_bytes="200kB")
    assert statements == ['VACUUM "public"."orders"', 'ANALYZE "public"."orders"',
                          'REINDEX INDEX CONCURRENTLY "public"."orders_pkey"']


def test_plan_full_vacuum_skips_analyze_and_reindex_and_exclusion_indexes_rebuild_plainly():
    dirty, other = table(mods=38000), table("rooms", dead=0, oid=2)
    before = {"tables": [dirty, other],
              "indexes": [index("orders_pkey", dirty, bloat=401408),
                          index("rooms_excl", other, bloat=401408, exclusion=True)]}
    statements, _ = planned(before, operations=["vacuum", "analyze", "reindex"], full=True, min_bloat_bytes="200kB")
    assert statements == ['VACUUM (FULL, ANALYZE) "public"."orders"', 'REINDEX INDEX "public"."rooms_excl"']


def test_plan_old_server_and_unknown_bloat_warn():
    tbl = table(dead=0)
    before = {"tables": [tbl], "indexes": [index("orders_pkey", tbl, bloat=401408),
                                           index("orders_expr", tbl, bloat=None, method="unknown")]}
    statements, warnings = planned(before, version=110000, operations=["reindex"], min_bloat_bytes="200kB")
    assert statements == ['REINDEX INDEX "public"."orders_pkey"']
    assert any("older than PostgreSQL 12" in w for w in warnings)
    assert any("public.orders_expr" in w for w in warnings)


@pytest.mark.parametrize("params, name", [
    (dict(operations=[]), "operations"),
    (dict(full=True, operations=["analyze"]), "full"),
    (dict(tables=["x; DROP TABLE y"]), "tables[0]"),
    (dict(min_dead_tuple_ratio=1.01), "min_dead_tuple_ratio"),
    (dict(min_bloat_bytes="0"), "min_bloat_bytes"),
    (dict(lock_timeout="1 fortnight"), "lock_timeout"),
])
def test_validate_rejects(params, name):
    with pytest.raises(ParameterError) as err:
        pm.PgMaintenance(FakeModule(**params)).validate()
    assert err.value.param == name


def test_timeouts_become_set_statements():
    proc = pm.PgMaintenance(FakeModule(lock_timeout="1.5s", statement_timeout="2min"))
    proc.validate()
    assert [s.as_string(None) for s in proc.session] == ["SET lock_timeout = '1500ms'",
                                                         "SET statement_timeout = '120000ms'"]
