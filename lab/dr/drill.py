"""The DR drill: fresh lab, a writer committing rows, the primary site killed, dr-failover.yml, the report.

    python -m lab.dr.drill [--async] [--dir DIR] [--report-dir DIR] [-e KEY=VALUE ...]

Exit status is the playbook's. The RTO is measured from the moment the primary site was killed (passed to the
playbook as dr_failure_declared_at), the RPO by counting the writer's acknowledged rows on the new primary.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab import docker, dr

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REPORT_DIR = ROOT / "reports"


def ansible_env(report_dir: Path) -> dict[str, str]:
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), OPS_RUNBOOKS_REPORT_DIR=str(report_dir),
                ANSIBLE_FORCE_COLOR="0", PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")


def playbook(name: str, report_dir: Path, extra_vars: dict, echo: bool = True) -> tuple[int, str, dict | None]:
    """Run playbooks/NAME against the DR lab inventory; returns (exit code, output, the run's report)."""
    started = time.time()
    cmd = ["ansible-playbook", str(ROOT / "playbooks" / name), "-i", str(ROOT / "inventories" / "lab-dr"),
           "-e", json.dumps(extra_vars)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ansible_env(report_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()
    rc = proc.wait(timeout=600)
    return rc, "".join(lines), latest_report(report_dir, name, started)


def latest_report(report_dir: Path, name: str, since: float) -> dict | None:
    reports = [p for p in Path(report_dir).glob(f"*-{name}.json") if p.stat().st_mtime >= since - 1]
    if not reports:
        return None
    path = max(reports, key=lambda p: p.stat().st_mtime)
    return dict(json.loads(path.read_text()), path=str(path), html=str(path.with_suffix(".html")))


def start_writer(ledger: Path) -> subprocess.Popen:
    ledger.unlink(missing_ok=True)
    ledger.touch()
    return subprocess.Popen([sys.executable, "-m", "lab.dr", "writer", "--ledger", str(ledger)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)


def stop_writer(proc: subprocess.Popen) -> dict:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return json.loads(out.strip().splitlines()[-1])


def wait_for_rows(ledger: Path, rows: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = len(ledger.read_text().split())
        if count >= rows:
            return count
        if time.monotonic() > deadline:
            raise docker.LabError(f"the writer committed {count} rows in {timeout:.0f}s, fewer than {rows}")
        time.sleep(0.1)


def drill(sync: bool = True, base: Path = dr.DEFAULT_DIR, report_dir: Path = DEFAULT_REPORT_DIR,
          extra_vars: dict | None = None, echo: bool = True, min_rows: int = 50) -> dict:
    """One failover drill from a fresh lab. Returns the playbook's exit code, output and report, the writer's
    counts and the ledger path."""
    dr.up(base, sync=sync, fresh=True)
    base = Path(base)
    ledger = base / "acknowledged.txt"
    writer = start_writer(ledger)
    try:
        wait_for_rows(ledger, min_rows, 60)
        declared_at = time.time()
        dr.kill(dr.PRIMARY, base)
    finally:
        writes = stop_writer(writer)
    print(f"drill: primary site {dr.PRIMARY.name} killed after {writes['acknowledged']} acknowledged writes "
          f"({'synchronous' if sync else 'asynchronous'} replication); failing over to {dr.SECONDARY.name}",
          flush=True)
    variables = {"dr_approved": True, "dr_failure_declared_at": declared_at, "dr_rpo_ledger": str(ledger),
                 **(extra_vars or {})}
    rc, output, report = playbook("dr-failover.yml", report_dir, variables, echo=echo)
    return {"rc": rc, "output": output, "report": report, "writes": writes, "ledger": str(ledger),
            "declared_at": declared_at, "sync": sync}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.dr.drill")
    ap.add_argument("--async", dest="sync", action="store_false", help="asynchronous replication")
    ap.add_argument("--dir", type=Path, default=dr.DEFAULT_DIR)
    ap.add_argument("--report-dir", type=Path, default=DEFAULT_REPORT_DIR)
    ap.add_argument("-e", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="extra variable for dr-failover.yml (for example dr_rto_target=30s)")
    args = ap.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.extra)
    try:
        result = drill(args.sync, args.dir, args.report_dir, extra)
    except docker.LabError as exc:
        print(f"drill: {exc}", file=sys.stderr)
        return 1
    report = result["report"]
    if report is None:
        print("drill: the playbook wrote no report (is the runbook_report callback enabled?)", file=sys.stderr)
        return result["rc"] or 1
    s = report["summary"]
    print(f"\ndrill: {s['result'].upper()}; RTO {s['rto']['measured_seconds']:.1f}s (target "
          f"{s['rto']['target_seconds']:g}s)" if s.get("rto") else f"\ndrill: {s['result'].upper()}; RTO not measured",
          end="")
    if s.get("rpo"):
        print(f"; RPO {s['rpo']['lost_rows']} of {result['writes']['acknowledged']} acknowledged rows lost "
              f"(target {s['rpo']['target_rows']})", end="")
    print(f"\ndrill: report {report['html']}\ndrill: the lab stays up for inspection; "
          "`make drill-down` removes it")
    return result["rc"]


if __name__ == "__main__":
    sys.exit(main())
