# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run many probes concurrently: retries per target, a concurrency limit and ONE deadline for the whole run.

When the deadline passes, targets still being checked (or still waiting for a slot) are cancelled and
reported with reason ``timeout``; targets already done keep their result.
"""

from __future__ import annotations

import asyncio
import ssl
import time

from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.base import ProbeFailed, describe, scrub
from ansible_collections.ops.runbooks.plugins.module_utils._common.clock import Stopwatch


class Shared:
    """What the probes of one run share: SSL contexts and clients (one HTTP connection pool per TLS setting
    rather than one per target), created on first use and closed when the run ends."""

    def __init__(self, concurrency):
        self.concurrency = concurrency
        self._resources = {}

    def resource(self, key, create):
        if key not in self._resources:
            self._resources[key] = create()
        return self._resources[key]

    def ssl_context(self, validate_certs, ca_cert):
        def create():
            if not validate_certs:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                return context
            return ssl.create_default_context(cafile=ca_cert)

        return self.resource(("ssl", bool(validate_certs), ca_cert), create)

    async def aclose(self):
        for resource in self._resources.values():
            if hasattr(resource, "aclose"):
                await resource.aclose()


class Outcome:
    """The result of one target so far; the last attempt wins."""

    def __init__(self, probe):
        self.probe = probe
        self.attempts = 0
        self.ok = False
        self.reason = self.error = None
        self.detail = {}
        self.latency_ms = None

    def record(self, started, ok, reason=None, error=None, detail=None):
        self.latency_ms = round((time.monotonic() - started) * 1000, 1)
        self.ok, self.reason, self.error, self.detail = ok, reason, error, detail or {}

    def timed_out(self, timeout):
        last = f"; last attempt: {self.error}" if self.error else ""
        waited = "not started" if not self.attempts else f"no healthy answer after {self.attempts} attempt(s)"
        self.ok, self.reason, self.error = False, "timeout", f"{waited} within the overall timeout of {timeout}s{last}"

    def result(self):
        p = self.probe
        return scrub({"name": p.name, "type": p.type, "address": p.address, "ok": self.ok, "reason": self.reason,
                      "error": self.error, "latency_ms": self.latency_ms, "attempts": self.attempts,
                      "detail": self.detail}, p.secrets())


async def _attempt(outcome):
    probe = outcome.probe
    started = time.monotonic()
    limit = asyncio.timeout(probe.max_latency)
    try:
        async with limit:
            detail = await probe.check()
        outcome.record(started, True, detail=detail)
    except ProbeFailed as exc:
        outcome.record(started, False, "check", exc.msg, exc.detail)
    except TimeoutError as exc:
        if limit.expired():
            outcome.record(started, False, "check", f"no answer within max_latency {probe.max_latency}s")
        else:
            outcome.record(started, False, "error", describe(exc))
    except Exception as exc:  # any client library failure is this target's result, never the run's
        outcome.record(started, False, "error", describe(exc))


async def _check(outcome, slots):
    probe = outcome.probe
    while True:
        # The slot is held for one attempt only, so a target sleeping between retries leaves room for others.
        async with slots:
            outcome.attempts += 1
            await _attempt(outcome)
        if outcome.ok or (probe.retries is not None and outcome.attempts > probe.retries):
            return
        await asyncio.sleep(probe.retry_delay)


async def _run(probes, timeout, concurrency):
    shared = Shared(concurrency)
    slots = asyncio.Semaphore(concurrency)
    outcomes = [Outcome(p) for p in probes]
    tasks = {}
    try:
        for outcome in outcomes:
            try:
                outcome.probe.prepare(shared)
            except Exception as exc:  # a CA file that is not PEM, say: this target's failure only
                outcome.record(time.monotonic(), False, "error", describe(exc))
                continue
            tasks[asyncio.create_task(_check(outcome, slots))] = outcome
        _done, pending = await asyncio.wait(tasks, timeout=timeout) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        for task in pending:
            tasks[task].timed_out(timeout)
    finally:
        await shared.aclose()
    return outcomes


def check_targets(probes, timeout, concurrency):
    """Check every probe, at most ``concurrency`` at a time, all within ``timeout`` seconds.

    Returns ``{healthy, targets, counts, failed_targets, check_seconds}``; ``targets`` holds one result per
    probe, in order: ``{name, type, address, ok, reason, error, latency_ms, attempts, detail}`` with ``reason`` one of
    ``check`` (answered wrongly), ``error`` (could not connect or ask) or ``timeout`` (overall timeout).
    """
    watch = Stopwatch()
    results = [o.result() for o in asyncio.run(_run(probes, timeout, concurrency))]
    failed = [r for r in results if not r["ok"]]
    return {
        "healthy": not failed,
        "targets": results,
        "counts": {"total": len(results), "ok": len(results) - len(failed), "failed": len(failed),
                   "timed_out": sum(r["reason"] == "timeout" for r in failed)},
        "failed_targets": [r["name"] for r in failed],
        "check_seconds": watch.elapsed,
    }
