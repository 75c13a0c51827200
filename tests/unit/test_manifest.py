"""The dump/manifest helpers and backup retention, without a server."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta

import pytest

from ansible_collections.ops.runbooks.plugins.module_utils._clients import pgdump
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_backup import select_prune
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.pg_restore import derived_name

HEX = "ab" * 32
OTHER = "cd" * 32


def test_stream_dump_hashes_what_it_writes_into_a_private_file(tmp_path):
    out = tmp_path / "d.dump"
    size, sha = pgdump.stream_dump(["sh", "-c", "head -c 3000000 /dev/urandom"], {}, str(out))
    data = out.read_bytes()
    assert size == len(data) == 3000000
    assert sha == hashlib.sha256(data).hexdigest()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_stream_dump_failure_removes_the_partial_file(tmp_path):
    out = tmp_path / "d.dump.partial"
    with pytest.raises(RunbookError) as err:
        pgdump.stream_dump(["sh", "-c", "printf 'half a dump'; echo 'pg_dump: error: boom' >&2; exit 1"], {}, str(out))
    assert "exited with 1" in err.value.msg and "boom" in err.value.msg
    assert not out.exists()


def test_sha256sum_formats(tmp_path):
    sums = tmp_path / "x.sql.gz.sha256"
    sums.write_text(f"{HEX.upper()}  x.sql.gz\n")
    assert pgdump.read_sha256_file(str(sums), "x.sql.gz") == HEX
    sums.write_text(f"{OTHER}  other.sql.gz\n{HEX} */backups/x.sql.gz\n")
    assert pgdump.read_sha256_file(str(sums), "x.sql.gz") == HEX
    sums.write_text(f"{OTHER}  a.sql.gz\n{HEX}  b.sql.gz\n")
    with pytest.raises(RunbookError, match="no sha256sum line for x.sql.gz"):
        pgdump.read_sha256_file(str(sums), "x.sql.gz")


def test_resolve_source(tmp_path):
    dump = tmp_path / "db_1.dump"
    dump.write_bytes(b"PGDMP...")
    with pytest.raises(RunbookError, match="refused: no manifest"):
        pgdump.resolve_source(str(dump))
    (tmp_path / "db_1.dump.sha256").write_text(f"{HEX}  db_1.dump\n")
    assert pgdump.resolve_source(str(dump))["format"] == "custom"
    manifest = {"tool": pgdump.MANIFEST_TOOL, "file": "db_1.dump", "sha256": OTHER, "format": "custom"}
    pgdump.write_manifest(pgdump.manifest_path(str(dump)), manifest)
    # A manifest beside the dump wins over a .sha256 file, and a manifest given directly resolves the same.
    for src in (dump, tmp_path / "db_1.dump.json"):
        source = pgdump.resolve_source(str(src))
        assert (source["path"], source["sha256"], source["manifest"]) == (str(dump), OTHER, manifest)
    (tmp_path / "foreign.json").write_text(json.dumps({"file": "db_1.dump"}))
    with pytest.raises(RunbookError, match="not a pg_backup manifest"):
        pgdump.resolve_source(str(tmp_path / "foreign.json"))


def test_restore_marker_round_trip():
    text = pgdump.marker_sql("db", HEX, "f.dump", "2025-01-01T00:00:00+00:00").as_string(None)
    comment = text.split(" IS ", 1)[1].strip("'")
    assert pgdump.marker_sha256(comment) == HEX
    assert pgdump.marker_sha256(f"hand-written note sha256={HEX}") is None
    assert pgdump.marker_sha256(None) is None


def test_count_differences_ignores_tables_the_dump_does_not_have():
    expected = {"public.a": 3, "public.b": 0}
    assert pgdump.count_differences(expected, {"public.a": 3, "public.b": 0, "public.extra": 9}) == []
    assert pgdump.count_differences(expected, {"public.a": 2}) == [
        {"table": "public.a", "expected": 3, "actual": 2}, {"table": "public.b", "expected": 0, "actual": None}]


NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
BACKUPS = [{"file": f"d{age}", "started_at": NOW - timedelta(days=age)} for age in (0.5, 2, 5, 9, 30)]


@pytest.mark.parametrize("keep_last, keep_days, pruned", [
    (None, None, []),
    (1, None, ["d0.5", "d2", "d5", "d9", "d30"]),  # the new backup is the one kept
    (3, None, ["d5", "d9", "d30"]),
    (None, 7, ["d9", "d30"]),
    (2, 7, ["d9", "d30"]),      # recent ones stay even beyond keep_last
    (5, 1, ["d30"]),            # the newest keep_last stay even when old
])
def test_select_prune(keep_last, keep_days, pruned):
    assert [b["file"] for b in select_prune(BACKUPS, NOW, keep_last, keep_days)] == pruned


def test_derived_names_fit_postgres_limit():
    name = derived_name("a" * 63, "_restore_20250101120000")
    assert len(name) == 63 and name.endswith("_restore_20250101120000")
    assert derived_name("shop", "_old_1") == "shop_old_1"
