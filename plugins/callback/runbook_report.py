# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: runbook_report
type: aggregate
short_description: A report of every run (JSON, Markdown and HTML with an SVG timeline), with RTO and RPO
version_added: 0.2.0
description:
  - Times every task of a playbook run and groups them into phases (the part of a task name before C( | ),
    else the role, else the play), then writes a report of the run as JSON, Markdown and a self-contained HTML
    page with an SVG timeline of the tasks.
  - Milestones set with M(ops.runbooks.runbook_milestone) are drawn on the timeline. Once a milestone has
    started the RTO clock, every task prints its duration and the time elapsed against the RTO budget while the
    play runs. The measured RTO and RPO and their targets are in the report; a breach fails the
    M(ops.runbooks.runbook_milestone) task, so it also fails the run.
  - Nothing from task arguments or results goes into the report except task names, hosts, status, durations,
    the C(msg) of failures (already censored by C(no_log)) and milestone measurements.
  - Enable it with C(callbacks_enabled = ops.runbooks.runbook_report) in C(ansible.cfg).
requirements:
  - Enabled in the callbacks_enabled setting.
options:
  report_dir:
    description: Directory the reports are written to (one file of each format per run).
    type: path
    default: ~/.ansible/runbook-reports
    env:
      - name: OPS_RUNBOOKS_REPORT_DIR
    ini:
      - section: callback_runbook_report
        key: report_dir
  progress:
    description: Print a line per task with its duration and, once the RTO clock runs, the RTO budget used.
    type: bool
    default: true
    env:
      - name: OPS_RUNBOOKS_REPORT_PROGRESS
    ini:
      - section: callback_runbook_report
        key: progress
"""

import html
import json
import os
import re
import time
from datetime import UTC, datetime

from ansible.plugins.callback import CallbackBase

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _iso(epoch):
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fmt(seconds):
    return "-" if seconds is None else f"{seconds:.1f}s"


class Run:
    """What happened in one playbook run; pure data, so it can be rendered and tested without Ansible."""

    def __init__(self, playbook, started_at):
        self.playbook = playbook
        self.started_at = started_at
        self.ended_at = None
        self.tasks = []
        self.milestones = []
        self.rto_clock = None
        self.stats = {}

    def start_task(self, uuid, name, phase, play, at):
        task = {"uuid": uuid, "name": name, "phase": phase, "play": play, "started_at": at, "ended_at": at,
                "hosts": {}, "status": "ok", "changed": False}
        self.tasks.append(task)
        return task

    def task_result(self, task, host, status, changed, at, msg=None):
        task["ended_at"] = max(task["ended_at"], at)
        task["hosts"][host] = {"status": status, "changed": changed, **({"msg": msg} if msg else {})}
        rank = ["skipped", "ok", "rescued", "ignored", "failed", "unreachable"]
        statuses = [h["status"] for h in task["hosts"].values()]
        task["status"] = max(statuses, key=rank.index)
        task["changed"] = task["changed"] or changed

    def milestone(self, record, task_name):
        entry = dict(record, task=task_name)
        self.milestones.append(entry)
        clock = record.get("rto_clock")
        if clock:
            self.rto_clock = clock
        if record.get("rto"):
            self.rto_clock = None

    def phases(self):
        phases = {}
        for t in self.tasks:
            p = phases.setdefault(t["phase"], {"phase": t["phase"], "started_at": t["started_at"],
                                               "ended_at": t["ended_at"], "tasks": 0, "changed": 0, "failed": 0})
            p["started_at"] = min(p["started_at"], t["started_at"])
            p["ended_at"] = max(p["ended_at"], t["ended_at"])
            p["tasks"] += 1
            p["changed"] += int(t["changed"])
            p["failed"] += int(t["status"] in ("failed", "unreachable"))
        for p in phases.values():
            p["seconds"] = round(p["ended_at"] - p["started_at"], 3)
        return list(phases.values())

    def objectives(self):
        rto = next((m["rto"] for m in reversed(self.milestones) if m.get("rto")), None)
        rpo = next((m["rpo"] for m in reversed(self.milestones) if m.get("rpo")), None)
        return {"rto": rto, "rpo": rpo}

    def summary(self):
        failed = sum(s.get("failures", 0) + s.get("unreachable", 0) for s in self.stats.values())
        objectives = self.objectives()
        breached = [k for k, v in objectives.items() if v and v.get("met") is False]
        return {
            "playbook": self.playbook, "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at or self.started_at),
            "duration_seconds": round((self.ended_at or self.started_at) - self.started_at, 3),
            "result": "failed" if failed or breached else "ok", "breached": breached,
            "tasks": len(self.tasks), "changed_tasks": sum(t["changed"] for t in self.tasks), **objectives,
        }

    def to_dict(self):
        def rel(epoch):
            return round(epoch - self.started_at, 3)

        return {
            "summary": self.summary(),
            "phases": [dict(p, started_at=rel(p["started_at"]), ended_at=rel(p["ended_at"])) for p in self.phases()],
            "tasks": [dict({k: v for k, v in t.items() if k != "uuid"}, started_at=rel(t["started_at"]),
                           ended_at=rel(t["ended_at"]), seconds=round(t["ended_at"] - t["started_at"], 3))
                      for t in self.tasks],
            "milestones": [dict(m, at=rel(m["at"])) for m in self.milestones],
            "stats": self.stats,
        }


def render_markdown(data):
    s = data["summary"]
    breached = f" (breached: {', '.join(s['breached'])})" if s["breached"] else ""
    lines = [f"# Runbook report: {s['playbook']}", "",
             f"- result: **{s['result'].upper()}**{breached}",
             f"- started {s['started_at']}, took {s['duration_seconds']:.1f}s, {s['tasks']} tasks, "
             f"{s['changed_tasks']} changed"]
    if s["rto"]:
        r = s["rto"]
        lines.append(f"- RTO: {r['measured_seconds']:.1f}s from {r['from']} (target "
                     f"{'-' if r['target_seconds'] is None else format(r['target_seconds'], 'g') + 's'}: "
                     f"{ {True: 'met', False: 'BREACHED', None: 'no target'}[r['met']] })")
    if s["rpo"]:
        r = s["rpo"]
        lines.append(f"- RPO: {r['lost_rows']} committed row(s) lost (target "
                     f"{'-' if r['target_rows'] is None else r['target_rows']}: "
                     f"{ {True: 'met', False: 'BREACHED', None: 'no target'}[r['met']] })")
    lines += ["", "## Phases", "", "| phase | start | duration | tasks | changed | failed |",
              "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {p['phase']} | {p['started_at']:.1f}s | {p['seconds']:.1f}s | {p['tasks']} | {p['changed']} | "
              f"{p['failed']} |" for p in data["phases"]]
    lines += ["", "## Tasks", "", "| start | duration | status | changed | phase | task |",
              "|---:|---:|---|---|---|---|"]
    lines += [f"| {t['started_at']:.1f}s | {t['seconds']:.1f}s | {t['status']} | {'yes' if t['changed'] else 'no'} | "
              f"{t['phase']} | {t['name'].replace('|', '/')} |" for t in data["tasks"]]
    if data["milestones"]:
        lines += ["", "## Milestones", ""] + [f"- {m['at']:.1f}s {m['name']}" for m in data["milestones"]]
    return "\n".join(lines) + "\n"


_COLOURS = {"ok": "#4c9f70", "changed": "#d8a31a", "failed": "#c8423b", "unreachable": "#c8423b",
            "skipped": "#b8b8b8", "ignored": "#e07b39", "rescued": "#e07b39"}


def render_svg(data, width=900):
    tasks = data["tasks"]
    # A failure declared before the run started is drawn where it happened, left of the run's start.
    origin = min([0.0] + [m["at"] for m in data["milestones"]])
    end = max([data["summary"]["duration_seconds"]] + [t["ended_at"] for t in tasks])
    total = max(end - origin, 0.001)
    label_w, row_h, top = 260, 18, 30
    plot_w = width - label_w - 20
    height = top + row_h * max(len(tasks), 1) + 30

    def x(sec):
        return label_w + plot_w * (sec - origin) / total

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11" role="img" aria-label="timeline of the run">']
    for i in range(6):
        sec = origin + total * i / 5
        out.append(f'<line x1="{x(sec):.1f}" y1="{top - 5}" x2="{x(sec):.1f}" y2="{height - 25}" stroke="#ddd"/>'
                   f'<text x="{x(sec):.1f}" y="{height - 10}" text-anchor="middle">{sec:.1f}s</text>')
    for i, t in enumerate(tasks):
        y = top + i * row_h
        colour = _COLOURS["changed"] if t["changed"] and t["status"] == "ok" else _COLOURS.get(t["status"], "#888")
        name = html.escape(f"{t['phase']}: {t['name']}"[:45])
        w = max(x(t["ended_at"]) - x(t["started_at"]), 1.5)
        out.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{name}</text>'
                   f'<rect x="{x(t["started_at"]):.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 4}" '
                   f'fill="{colour}"><title>{html.escape(t["name"])}: {t["seconds"]:.2f}s, {t["status"]}'
                   f'{", changed" if t["changed"] else ""}</title></rect>')
    for m in data["milestones"]:
        mx = x(m["at"])
        out.append(f'<line x1="{mx:.1f}" y1="{top - 12}" x2="{mx:.1f}" y2="{height - 25}" stroke="#3465a4" '
                   f'stroke-dasharray="4 3"/><text x="{mx + 3:.1f}" y="{top - 14}" fill="#3465a4">'
                   f'{html.escape(m["name"])}</text>')
    out.append("</svg>")
    return "".join(out)


def render_html(data):
    s = data["summary"]
    md = html.escape(render_markdown(data))
    embedded = json.dumps(data).replace("</", "<\\/")  # raw text in <script>: only "</" could end it early
    verdict_colour = "#c8423b" if s["result"] == "failed" else "#4c9f70"
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Runbook report: "
            f"{html.escape(s['playbook'])}</title><style>body{{font-family:sans-serif;margin:2em;max-width:1000px}}"
            f".verdict{{color:#fff;background:{verdict_colour};padding:.2em .6em;border-radius:4px}}"
            f"pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head><body>"
            f"<h1>{html.escape(s['playbook'])} <span class=\"verdict\">{s['result'].upper()}</span></h1>"
            f"{render_svg(data)}<pre>{md}</pre>"
            f"<script type=\"application/json\" id=\"report\">{embedded}</script>"
            f"</body></html>\n")


def write_reports(data, directory):
    os.makedirs(directory, exist_ok=True)
    s = data["summary"]
    stem = f"{s['started_at'].replace(':', '').replace('-', '')}-{_UNSAFE.sub('_', os.path.basename(s['playbook']))}"
    paths = {}
    for ext, text in (("json", json.dumps(data, indent=2) + "\n"), ("md", render_markdown(data)),
                      ("html", render_html(data))):
        path = os.path.join(directory, f"{stem}.{ext}")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        paths[ext] = path
    return paths


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ops.runbooks.runbook_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.run = None
        self.play_name = ""
        self.current = {}

    def v2_playbook_on_start(self, playbook):
        self.run = Run(playbook._file_name, time.time())

    def v2_playbook_on_play_start(self, play):
        self.play_name = play.get_name().strip()

    def _task_start(self, task):
        if self.run is None:
            return
        name = task.get_name().strip()
        role = task._role.get_name() if task._role else None
        shown = name.split(" : ", 1)[1] if role and name.startswith(f"{role} : ") else name
        phase = shown.split(" | ", 1)[0] if " | " in shown else (role or self.play_name or "play")
        self.current[task._uuid] = self.run.start_task(task._uuid, shown, phase, self.play_name, time.time())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_start(task)

    def _result(self, result, status):
        task = self.current.get(result._task._uuid) if self.run else None
        if task is None:
            return
        res = result._result
        # A check-mode task's "changed" is a prediction: the run changed nothing there.
        changed = bool(res.get("changed")) and status == "ok" and not result._task.check_mode
        msg = res.get("msg") if status in ("failed", "unreachable") and isinstance(res.get("msg"), str) else None
        now = time.time()
        self.run.task_result(task, result._host.get_name(), status, changed, now, msg)
        if isinstance(res.get("runbook_milestone"), dict):
            self.run.milestone(res["runbook_milestone"], task["name"])
        if self.get_option("progress") and status != "skipped":
            self._progress(task, result._host.get_name(), now)

    def _progress(self, task, host, now):
        line = f"runbook_report: [{task['phase']}] {task['name']} ({host}) {now - task['started_at']:.1f}s"
        clock = self.run.rto_clock
        if clock:
            elapsed = now - clock["started_at"]
            target = clock.get("target_seconds")
            budget = f" of {target:g}s ({100 * elapsed / target:.0f}% of the budget)" if target else ""
            line += f"; RTO clock {elapsed:.1f}s{budget}"
        self._display.display(line, color="bright blue" if not clock or not clock.get("target_seconds") or
                              now - clock["started_at"] <= clock["target_seconds"] else "bright red")

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        if self.run is None or not self.run.tasks:
            return
        self.run.ended_at = time.time()
        self.run.stats = {host: stats.summarize(host) for host in sorted(stats.processed)}
        data = self.run.to_dict()
        directory = os.path.expanduser(self.get_option("report_dir"))
        try:
            paths = write_reports(data, directory)
        except OSError as exc:
            self._display.warning(f"runbook_report: could not write the report to {directory}: {exc}")
            return
        s = data["summary"]
        self._display.banner("RUNBOOK REPORT")
        self._display.display(f"runbook_report: {s['result'].upper()} in {s['duration_seconds']:.1f}s, "
                              f"{s['tasks']} tasks ({s['changed_tasks']} changed)")
        for p in data["phases"]:
            self._display.display(f"runbook_report:   {p['phase']:<24} {p['seconds']:7.1f}s  {p['tasks']} tasks")
        if s["rto"]:
            r = s["rto"]
            self._display.display(f"runbook_report: RTO {r['measured_seconds']:.1f}s from {r['from']}, target "
                                  f"{_fmt(r['target_seconds'])}: "
                                  f"{ {True: 'met', False: 'BREACHED', None: 'no target'}[r['met']] }")
        if s["rpo"]:
            r = s["rpo"]
            self._display.display(f"runbook_report: RPO {r['lost_rows']} committed row(s) lost, target "
                                  f"{'-' if r['target_rows'] is None else r['target_rows']}: "
                                  f"{ {True: 'met', False: 'BREACHED', None: 'no target'}[r['met']] }")
        self._display.display(f"runbook_report: HTML report {paths['html']}")
        self._display.display(f"runbook_report: JSON report {paths['json']}")
