# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: health_check over 500 local HTTP targets, against what users write today and a bare checker.

    python bench/health.py [--targets 500] [--servers 4] [--rounds 3] [--uri-rounds 1]

In the same run, on the same URLs (spread over ``--servers`` HTTP servers on loopback ports, served by a
separate process so they do not compete with the bare checker for this process's GIL):
  - health_check: one ops.runbooks.health_check task through ansible-playbook;
  - uri loop: ansible.builtin.uri in a ``loop`` over the URLs, through ansible-playbook;
  - bare: httpx alone with asyncio in this process, at most 50 requests at a time, through one AsyncClient
    and through one AsyncClient per server (what health_check does), the floor for a Python checker;
  - and, for reference, ansible-playbook running one debug task (the cost of starting Ansible at all).
Both playbooks end with the same assert that every URL answered 200. Prints the median seconds of each and
the ratios uri loop / health_check and health_check / bare. Not a test: nothing here fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / ".collections"), str(ROOT)]

from tests.helpers.servers import HttpServer  # noqa: E402

CONCURRENCY = 50


def serve(count, ports, stop):
    servers = [HttpServer() for _ in range(count)]
    ports.extend([s.port for s in servers])
    stop.wait()
    for server in servers:
        server.close()


def playbook(path, tasks):
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False))
    return path


def run_ansible(play, workdir):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"), ANSIBLE_DEPRECATION_WARNINGS="0")
    started = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(workdir / "hosts"),
                           "-e", f"@{workdir / 'vars.yml'}", str(play)], env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{play.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


async def bare_check(urls, per_origin):
    """What one writes with httpx alone: gather over the URLs, at most CONCURRENCY at a time, through one
    AsyncClient, or (``per_origin``) one AsyncClient per server as health_check does."""
    limit = asyncio.Semaphore(CONCURRENCY)
    clients = {}

    def client(url):
        key = httpx.URL(url).netloc if per_origin else None
        if key not in clients:
            clients[key] = httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY), timeout=30)
        return clients[key]

    async def one(url):
        async with limit:
            return (await client(url).get(url)).status_code

    try:
        statuses = await asyncio.gather(*(one(u) for u in urls))
    finally:
        for c in clients.values():
            await c.aclose()
    assert statuses.count(200) == len(urls), statuses


def bare(urls, per_origin=False):
    started = time.monotonic()
    asyncio.run(bare_check(urls, per_origin))
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of health_check, bare and the baseline")
    parser.add_argument("--uri-rounds", type=int, default=1, help="rounds of the uri loop (slow: minutes each)")
    args = parser.parse_args()

    manager = multiprocessing.Manager()
    ports, stop = manager.list(), manager.Event()
    server = multiprocessing.Process(target=serve, args=(args.servers, ports, stop), daemon=True)
    server.start()
    while len(ports) < args.servers:
        time.sleep(0.05)
    urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/ok?target={i}" for i in range(args.targets)]

    times = {"health_check": [], "uri loop": [], "bare httpx, one client": [], "bare httpx, client per server": [],
             "ansible startup (1 debug task)": []}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp:
            work = Path(tmp)
            (work / "hosts").write_text(
                f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
            (work / "vars.yml").write_text(yaml.safe_dump({"urls": urls,
                                                           "targets": [{"type": "http", "url": u} for u in urls]}))
            health = playbook(work / "health.yml", [
                {"name": "health_check", "ops.runbooks.health_check": {
                    "targets": "{{ targets }}", "concurrency": CONCURRENCY, "timeout": 300}, "register": "r"},
                {"ansible.builtin.assert": {"that": [f"r.counts.ok == {args.targets}"]}},
            ])
            uri = playbook(work / "uri.yml", [
                {"name": "uri loop", "ansible.builtin.uri": {"url": "{{ item }}"}, "loop": "{{ urls }}",
                 "register": "r"},
                {"ansible.builtin.assert": {"that": [
                    f"r.results | selectattr('status', 'eq', 200) | list | length == {args.targets}"]}},
            ])
            baseline = playbook(work / "baseline.yml", [{"ansible.builtin.debug": {"msg": "hello"}}])
            for i in range(max(args.rounds, args.uri_rounds)):
                if i < args.rounds:
                    times["ansible startup (1 debug task)"].append(run_ansible(baseline, work))
                    times["health_check"].append(run_ansible(health, work))
                    times["bare httpx, one client"].append(bare(urls))
                    times["bare httpx, client per server"].append(bare(urls, per_origin=True))
                if i < args.uri_rounds:
                    print(f"uri loop round {i + 1}: {args.targets} module runs, this takes a while...", flush=True)
                    times["uri loop"].append(run_ansible(uri, work))
    finally:
        stop.set()
        server.join(timeout=10)

    median = {k: statistics.median(v) for k, v in times.items() if v}
    print(f"\n{args.targets} HTTP targets on {args.servers} loopback servers; median seconds "
          f"({args.rounds} rounds, uri loop {args.uri_rounds}):")
    for name, seconds in median.items():
        print(f"  {name:32s} {seconds:8.2f}   (rounds: {', '.join(f'{s:.2f}' for s in times[name])})")
    if "uri loop" in median:
        print(f"\n  uri loop / health_check  = {median['uri loop'] / median['health_check']:6.1f}x  "
              "(how much faster than what users write today)")
    floor = min(median["bare httpx, one client"], median["bare httpx, client per server"])
    print(f"  health_check / bare httpx = {median['health_check'] / floor:6.1f}x  "
          "(over the faster bare asyncio checker; Ansible's own start-up included)")
    own = median["health_check"] - median["ansible startup (1 debug task)"]
    print(f"  health_check - ansible startup = {own:.2f} s (the module's own share)")


if __name__ == "__main__":
    main()
