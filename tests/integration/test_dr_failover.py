"""The DR drill end to end on the two-site lab (lab/dr): refusal, failover with counted data loss, rerun,
failback and the report. The tests run in order on one lab: each starts from the state the previous one left.

RTO targets are set generously here (the figures are printed, not asserted against the clock), except in the
breach test, where an impossible target shows that a breach fails the run.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import psycopg
import pytest

from lab import dns as dns_lab
from lab import docker, dr
from lab.dr import drill as dr_drill
from tests.helpers.summary import record

pytestmark = pytest.mark.integration
GENEROUS = {"dr_rto_target": "10min"}


@pytest.fixture(scope="module")
def dr_lab(tmp_path_factory):
    started_engine = not docker.answering()
    dns_lab.up()
    yield tmp_path_factory.mktemp("dr-reports")
    dr._remove_sites(dr.DEFAULT_DIR)
    if started_engine:
        docker.stop()


def sql(site, query, args=None, db="app"):
    with psycopg.connect(**dict(dr.admin_conninfo(dr.DEFAULT_DIR, site), dbname=db), autocommit=True) as conn:
        return conn.execute(query, args).fetchall()


def resolve():
    lab = dns_lab.up()
    answer = dns.query.tcp(dns.message.make_query(f"app.{lab.zone}", "A"), lab.host, port=lab.port, timeout=3)
    return sorted(rr.address for rrset in answer.answer for rr in rrset)


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.load(response)


def post_item(site, body):
    request = urllib.request.Request(f"{site.url()}/items", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["id"]


def site_state():
    """What a refused failover must leave exactly as it was."""
    b = dr.DEFAULT_DIR / "site-b"
    return {
        "dns": resolve(),
        "site_b_in_recovery": sql(dr.SECONDARY, "SELECT pg_is_in_recovery()")[0][0],
        "site_a_read_only": sql(dr.PRIMARY, "SHOW default_transaction_read_only")[0][0],
        "secret": hashlib.sha256((b / "secrets" / "database_url").read_bytes()).hexdigest(),
        "env": (b / ".env").read_text(),
        "site_b_app": [c["Name"] for c in dr.deployment(dr.DEFAULT_DIR, dr.SECONDARY).containers()
                       if c["Service"] == "app"],
        "locks": sorted(p.name for p in Path("/var/tmp/ops-runbooks-locks").glob("*.lock")),
    }


def missing_on(site, ledger):
    keys = [line for line in Path(ledger).read_text().split() if line]
    present = sql(site, "SELECT count(*) FROM items WHERE id = ANY(%s::bigint[])", (keys,))[0][0]
    return len(keys), len(keys) - present


def test_lag_above_the_rpo_refuses_before_promotion(dr_lab):
    dr.up(sync=True, fresh=True)
    sql(dr.SECONDARY, "SELECT pg_wal_replay_pause()", db="postgres")
    try:
        for i in range(40):
            post_item(dr.PRIMARY, {"lagging": i, "pad": "x" * 200})
        before = site_state()
        rc, output, report = dr_drill.playbook("dr-failover.yml", dr_lab,
                                               dict(GENEROUS, dr_approved=True, dr_max_lag_bytes="1kB"), echo=False)
        after = site_state()
    finally:
        sql(dr.SECONDARY, "SELECT pg_wal_replay_resume()", db="postgres")
    assert rc != 0, output
    failed = [t for t in report["tasks"] if t["status"] == "failed"]
    assert [t["name"] for t in failed] == ["Preflight | the standby's lag is within the RPO (pg_promote refuses "
                                           "beyond it unless dr_force)"], output
    assert "max_lag_bytes" in output
    ran = {t["phase"] for t in report["tasks"] if t["status"] != "skipped"}
    assert not ran & {"Promote", "Application", "DNS"}, ran
    assert after == before
    assert before["dns"] == [dr.PRIMARY.ip] and before["site_b_in_recovery"] and before["site_b_app"] == []


def test_unapproved_failover_changes_nothing(dr_lab):
    before = site_state()
    rc, output, report = dr_drill.playbook("dr-failover.yml", dr_lab, GENEROUS, echo=False)
    assert rc != 0 and "dr_approved is not true" in output
    assert site_state() == before


def test_a_second_failover_is_refused_while_one_runs(dr_lab):
    lock = Path("/var/tmp/ops-runbooks-locks/dr-failover-app.lab.example.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"owner": "other-run", "acquired_at": time.time(), "purpose": "failover"}))
    try:
        before = site_state()
        rc, output, report = dr_drill.playbook("dr-failover.yml", dr_lab, dict(GENEROUS, dr_approved=True),
                                               echo=False)
        assert rc != 0 and "held by 'other-run'" in output and "another run is in progress" in output
        assert site_state() == before
        assert json.loads(lock.read_text())["owner"] == "other-run"  # the other run's lock is left alone
    finally:
        lock.unlink(missing_ok=True)


def test_force_promotes_beyond_the_lag_limit_and_fences_the_live_primary(dr_lab):
    sql(dr.SECONDARY, "SELECT pg_wal_replay_pause()", db="postgres")
    written = [post_item(dr.PRIMARY, {"forced": i, "pad": "x" * 200}) for i in range(40)]
    rc, output, report = dr_drill.playbook(
        "dr-failover.yml", dr_lab, dict(GENEROUS, dr_approved=True, dr_max_lag_bytes="1kB", dr_force=True),
        echo=False)
    assert rc == 0, output
    assert resolve() == [dr.SECONDARY.ip]
    assert sql(dr.SECONDARY, "SELECT pg_is_in_recovery()")[0][0] is False
    # The old primary was up: it was fenced before the promotion, and the standby caught up with it first.
    assert sql(dr.PRIMARY, "SHOW default_transaction_read_only")[0][0] == "on"
    assert sql(dr.SECONDARY, "SELECT count(*) FROM items WHERE id = ANY(%s)", (written,))[0][0] == len(written)


def test_synchronous_drill_loses_no_committed_row(dr_lab):
    result = dr_drill.drill(sync=True, report_dir=dr_lab, extra_vars=GENEROUS, echo=False)
    report = result["report"]
    assert result["rc"] == 0, result["output"]
    s = report["summary"]
    committed, missing = missing_on(dr.SECONDARY, result["ledger"])
    assert committed == result["writes"]["acknowledged"] >= 50
    assert missing == 0 and s["rpo"] == {"lost_rows": 0, "target_rows": 0, "met": True}
    assert s["rto"]["from"] == "failure_declared" and s["rto"]["met"] is True
    assert s["rto"]["started_at"] == pytest.approx(result["declared_at"], abs=0.01)
    phases = {p["phase"]: p["seconds"] for p in report["phases"]}
    assert {"Preflight", "Promote", "Application", "DNS", "Verify"} <= set(phases)
    # The service moved: name, database, application.
    assert resolve() == [dr.SECONDARY.ip]
    assert sql(dr.SECONDARY, "SELECT pg_is_in_recovery()")[0][0] is False
    assert get(f"{dr.SECONDARY.url()}/health/ready")[0] == 200
    assert "runbook_report: RTO" in result["output"] and "% of the budget" in result["output"]
    html = Path(report["html"]).read_text()
    assert "<svg" in html and "service_verified" in html
    record(f"DR drill, synchronous replication: RTO {s['rto']['measured_seconds']:.1f}s "
           f"({', '.join(f'{k} {v:.1f}s' for k, v in phases.items())}); "
           f"RPO {s['rpo']['lost_rows']} of {committed} acknowledged rows lost; report {report['html']}")


def test_second_run_changes_nothing(dr_lab):
    rc, output, report = dr_drill.playbook("dr-failover.yml", dr_lab, dict(GENEROUS, dr_approved=True), echo=False)
    assert rc == 0, output
    assert report["summary"]["changed_tasks"] == 0, [t["name"] for t in report["tasks"] if t["changed"]]
    assert all(s["changed"] == 0 for s in report["stats"].values())
    assert resolve() == [dr.SECONDARY.ip]


def test_failback_rebuilds_the_old_primary_and_switches_back(dr_lab):
    written = post_item(dr.SECONDARY, {"written": "on site-b while site-a was down"})
    rc, output, report = dr_drill.playbook(
        "dr-failback.yml", dr_lab,
        dict(GENEROUS, dr_failback_approved=True, dr_switch_back=True, dr_approved=True), echo=False)
    assert rc == 0, output
    assert resolve() == [dr.PRIMARY.ip]
    assert sql(dr.PRIMARY, "SELECT pg_is_in_recovery()")[0][0] is False
    # What was written on site-b while site-a was down came back with the rebuild.
    assert sql(dr.PRIMARY, "SELECT count(*) FROM items WHERE id = %s", (written,))[0][0] == 1
    status, ready = get(f"{dr.PRIMARY.url()}/health/ready")
    assert status == 200, ready
    # The site it left is fenced: it no longer accepts writes.
    assert sql(dr.SECONDARY, "SHOW default_transaction_read_only")[0][0] == "on"
    # Run again as the inventory has it (site-a failed): site-a now serves, so the rebuild refuses to touch it.
    rc, output, report = dr_drill.playbook(
        "dr-failback.yml", dr_lab, dict(GENEROUS, dr_failback_approved=True), echo=False)
    assert rc != 0 and "rebuilding it would discard live data" in output
    assert sql(dr.PRIMARY, "SELECT count(*) FROM items WHERE id = %s", (written,))[0][0] == 1
    assert get(f"{dr.PRIMARY.url()}/health/ready")[0] == 200


def test_asynchronous_drill_counts_the_loss_and_a_breach_fails_the_run(dr_lab):
    result = dr_drill.drill(sync=False, report_dir=dr_lab, extra_vars={"dr_rto_target": "1ms"}, echo=False)
    report = result["report"]
    s = report["summary"]
    assert result["rc"] != 0, result["output"]
    assert "rto" in s["breached"] and s["rto"]["met"] is False
    assert "RTO breached" in result["output"]
    committed, missing = missing_on(dr.SECONDARY, result["ledger"])
    assert committed == result["writes"]["acknowledged"]
    assert s["rpo"]["lost_rows"] == missing  # counted by the run, recounted here
    record(f"DR drill, asynchronous replication: RTO {s['rto']['measured_seconds']:.1f}s; "
           f"RPO {missing} of {committed} acknowledged rows lost (counted)")
