# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the DR failover's RTO broken into its phases, next to the floor measured in the same run.

    python bench/drill.py [--rounds 1] [--async]

Each round: a fresh two-site lab (lab/dr), a writer committing rows, the primary site killed, dr-failover.yml
(the same drill as `make drill`). From the run's report it prints the RTO (from the kill to the verified
service) split into: Ansible's start-up (kill to the first task), preflight, promote, application, DNS and
verify. Then, in the same round, the old primary is rebuilt as a replica (dr-failback.yml) and promoted with
nothing else around it (`SELECT pg_promote()` until a write commits): the floor no runbook can beat. Prints the
ratio RTO / floor and the RTO against the 20 s target. Not a test: nothing here fails on a number.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / ".collections"), str(ROOT)]

from lab import dns as dns_lab  # noqa: E402
from lab import dr  # noqa: E402
from lab.dr import drill  # noqa: E402

PHASES = ["Preflight", "Promote", "Application", "DNS", "Verify"]
TARGET = 20.0


def promotion_floor(site: dr.Site, timeout: float = 60) -> float:
    """Seconds from pg_promote() on ``site``'s standby until a write commits there."""
    info = dr.admin_conninfo(dr.DEFAULT_DIR, site)
    with psycopg.connect(**info, autocommit=True) as conn:
        if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
            raise SystemExit(f"{site.name} is not a standby; cannot measure the promotion floor")
        start = time.monotonic()
        conn.execute("SELECT pg_promote(wait => false)")
        while True:
            try:
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS bench_floor (x int); INSERT INTO bench_floor VALUES (1)")
                break
            except psycopg.errors.ReadOnlySqlTransaction:
                if time.monotonic() - start > timeout:
                    raise SystemExit(f"{site.name} did not accept writes within {timeout}s of pg_promote()") from None
                time.sleep(0.01)
        return time.monotonic() - start


def one_round(report_dir: Path, sync: bool) -> dict:
    result = drill.drill(sync=sync, report_dir=report_dir, extra_vars={"dr_rto_target": "10min"}, echo=False)
    report = result["report"]
    if result["rc"] != 0 or report is None:
        raise SystemExit(f"the drill failed (exit {result['rc']}):\n{result['output'][-3000:]}")
    phases = {p["phase"]: p for p in report["phases"]}
    rto = report["summary"]["rto"]["measured_seconds"]
    first_task = min(t["started_at"] for t in report["tasks"])
    figures = {"rto": rto, "startup": first_task - report["milestones"][0]["at"]}
    for name in PHASES:
        figures[name] = phases[name]["seconds"] if name in phases else 0.0
    figures["lost"] = report["summary"]["rpo"]["lost_rows"]
    figures["committed"] = result["writes"]["acknowledged"]
    rc, output, _ = drill.playbook("dr-failback.yml", report_dir, {"dr_failback_approved": True}, echo=False)
    if rc != 0:
        raise SystemExit(f"rebuilding the old primary failed (exit {rc}):\n{output[-3000:]}")
    figures["floor"] = promotion_floor(dr.PRIMARY)
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/drill.py")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--async", dest="sync", action="store_false", help="asynchronous replication")
    args = ap.parse_args(argv)
    dns_lab.up()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="ops-runbooks-bench-drill-") as tmp:
        for i in range(args.rounds):
            rounds.append(one_round(Path(tmp), args.sync))
            print(f"round {i + 1}: RTO {rounds[-1]['rto']:.2f}s, floor {rounds[-1]['floor']:.3f}s", flush=True)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"\nDR failover on the lab, {'synchronous' if args.sync else 'asynchronous'} replication, median of "
          f"{len(rounds)} round(s):")
    print(f"  {'ansible start-up':<18}{med['startup']:7.2f}s  (kill to the first task)")
    for name in PHASES:
        print(f"  {name:<18}{med[name]:7.2f}s")
    print(f"  {'RTO':<18}{med['rto']:7.2f}s  (kill to verified service; target {TARGET:g}s: "
          f"{'met' if med['rto'] <= TARGET else 'missed'})")
    print(f"  {'floor':<18}{med['floor']:7.3f}s  (pg_promote() alone until a write commits)")
    print(f"  RTO / floor = {med['rto'] / med['floor']:.1f}")
    print(f"  RPO: {med['lost']:.0f} of {med['committed']:.0f} acknowledged rows lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
