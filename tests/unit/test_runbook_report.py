"""The runbook_report callback's model and renderers, and runbook_milestone's measurements (no Ansible run)."""

from __future__ import annotations

import json
import re

import pytest

from ansible_collections.ops.runbooks.plugins.action.runbook_milestone import assess, parse_time
from ansible_collections.ops.runbooks.plugins.callback.runbook_report import (
    Run,
    render_html,
    render_markdown,
    render_svg,
    write_reports,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError


def args(**kw):
    base = dict(name="m", at=None, starts_rto=False, ends_rto=False, rto_target=None, lost_rows=None,
                rpo_target=None)
    return dict(base, **kw)


def sample_run():
    run = Run("playbooks/dr-failover.yml", 1000.0)
    t1 = run.start_task("u1", "Preflight | lag within the RPO", "Preflight", "DR", 1000.5)
    run.task_result(t1, "site-b", "ok", False, 1002.0)
    run.milestone({"name": "failure_declared", "at": 998.0, "rto": None, "rpo": None,
                   "rto_clock": {"started_at": 998.0, "target_seconds": 20.0, "elapsed_seconds": 2.0}}, t1["name"])
    t2 = run.start_task("u2", "Promote | promote <replica>", "Promote", "DR", 1002.0)
    run.task_result(t2, "site-b", "ok", True, 1003.5)
    t3 = run.start_task("u3", "Verify | service verified", "Verify", "DR", 1003.5)
    run.task_result(t3, "ctl", "ok", False, 1004.0)
    run.milestone({"name": "service_verified", "at": 1004.0, "rpo": None,
                   "rto": {"measured_seconds": 6.0, "target_seconds": 20.0, "met": True, "from": "failure_declared",
                           "started_at": 998.0}}, t3["name"])
    run.milestone({"name": "data_loss_counted", "at": 1004.2, "rto": None,
                   "rpo": {"lost_rows": 3, "target_rows": 0, "met": False}}, t3["name"])
    run.ended_at = 1004.5
    run.stats = {"ctl": {"ok": 3, "changed": 1, "failures": 0, "unreachable": 0}}
    return run


def test_phases_objectives_and_verdict():
    data = sample_run().to_dict()
    assert [p["phase"] for p in data["phases"]] == ["Preflight", "Promote", "Verify"]
    assert [p["seconds"] for p in data["phases"]] == [1.5, 1.5, 0.5]
    s = data["summary"]
    assert s["rto"]["measured_seconds"] == 6.0 and s["rto"]["met"] is True
    assert s["rpo"] == {"lost_rows": 3, "target_rows": 0, "met": False}
    assert s["result"] == "failed" and s["breached"] == ["rpo"]
    assert s["changed_tasks"] == 1 and s["duration_seconds"] == 4.5
    # Times are relative to the run's start; a failure declared before the run has a negative offset.
    assert data["milestones"][0]["at"] == -2.0


def test_failed_host_makes_the_task_failed():
    run = Run("p.yml", 0.0)
    task = run.start_task("u", "t", "p", "play", 0.0)
    run.task_result(task, "a", "ok", True, 1.0)
    run.task_result(task, "b", "failed", False, 2.0, msg="boom")
    assert task["status"] == "failed" and task["changed"] and task["ended_at"] == 2.0
    assert task["hosts"]["b"]["msg"] == "boom"


def test_renderings_are_self_contained_and_escaped(tmp_path):
    run = sample_run()
    run.tasks[0]["name"] = "Preflight | </script><script>alert(1)</script>"
    data = run.to_dict()
    md = render_markdown(data)
    assert "RTO: 6.0s from failure_declared (target 20s: met)" in md
    assert "RPO: 3 committed row(s) lost (target 0: BREACHED)" in md
    svg = render_svg(data)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 3 and "service_verified" in svg
    assert "&lt;replica&gt;" in svg and "<replica>" not in svg
    # The failure declared 2 s before the run is drawn left of the run's first task, not clamped onto it.
    declared = float(re.search(r'<line x1="([\d.]+)"[^>]*stroke="#3465a4"', svg).group(1))
    first_task = float(re.search(r'<rect x="([\d.]+)"', svg).group(1))
    assert declared < first_task
    page = render_html(data)
    assert "<svg" in page and not re.search(r"<(link|script) [^>]*src=", page)  # nothing fetched
    embedded = re.search(r'<script type="application/json" id="report">(.*?)</script>', page).group(1)
    assert json.loads(embedded)["summary"]["rpo"]["lost_rows"] == 3  # as a browser's JSON.parse reads it
    paths = write_reports(data, str(tmp_path))
    assert sorted(paths) == ["html", "json", "md"]
    assert json.loads(open(paths["json"]).read())["summary"]["rpo"]["lost_rows"] == 3


def test_rto_is_measured_from_the_start_milestone():
    record, clock, breaches = assess(args(name="failure_declared", at=100.0, starts_rto=True, rto_target="20s"),
                                     {}, now=103.0)
    assert clock == {"started_at": 100.0, "start_milestone": "failure_declared", "target_seconds": 20.0}
    assert record["rto_clock"]["elapsed_seconds"] == 3.0 and not breaches
    record, _, breaches = assess(args(name="service_verified", at=112.5, ends_rto=True), clock, now=112.5)
    assert record["rto"] == {"measured_seconds": 12.5, "target_seconds": 20.0, "met": True,
                             "from": "failure_declared", "started_at": 100.0}
    assert breaches == []
    record, _, breaches = assess(args(name="service_verified", at=125.0, ends_rto=True), clock, now=125.0)
    assert record["rto"]["met"] is False
    assert breaches == ["RTO breached: service verified 25.0s after failure_declared, target 20s"]


def test_rpo_counts_rows_against_the_target():
    record, _, breaches = assess(args(lost_rows=0, rpo_target=0), {}, now=1.0)
    assert record["rpo"] == {"lost_rows": 0, "target_rows": 0, "met": True} and not breaches
    record, _, breaches = assess(args(lost_rows=4, rpo_target=2), {}, now=1.0)
    assert record["rpo"]["met"] is False and breaches == ["RPO breached: 4 committed row(s) lost, target 2"]


@pytest.mark.parametrize("kw, param", [
    (dict(ends_rto=True), "ends_rto"),  # no clock started
    (dict(starts_rto=True, ends_rto=True), "ends_rto"),
    (dict(at="yesterday-ish"), "at"),
    (dict(at=10_000.0), "at"),  # in the future
    (dict(rto_target="soon", starts_rto=True), "rto_target"),
    (dict(rpo_target=0), "lost_rows"),
    (dict(lost_rows=-1), "lost_rows"),
])
def test_bad_milestones_name_the_parameter(kw, param):
    with pytest.raises(ParameterError) as err:
        assess(args(**kw), {}, now=100.0)
    assert err.value.param == param and err.value.msg.startswith(f"{param}:")


def test_times_parse_as_epoch_or_iso8601():
    assert parse_time("1796000000.5") == 1796000000.5
    assert parse_time("2026-11-30T12:00:00Z") == parse_time("2026-11-30T12:00:00") == 1796040000.0
    assert parse_time("2026-11-30T13:00:00+01:00") == 1796040000.0
