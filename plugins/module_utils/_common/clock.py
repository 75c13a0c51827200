# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded waits on a monotonic clock. Every wait in the collection goes through ``wait_until``."""

from __future__ import annotations

import time

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError


class Stopwatch:
    def __init__(self):
        self.started = time.monotonic()

    @property
    def elapsed(self):
        return round(time.monotonic() - self.started, 3)


def wait_until(predicate, timeout, interval=0.5, what="condition", sleep=time.sleep, clock=time.monotonic):
    """Call ``predicate`` until it returns a truthy value or ``timeout`` seconds pass.

    Returns ``(value, elapsed_seconds)``. Raises RunbookError naming ``what`` on timeout; the last value or
    exception seen is reported so the user can tell "never ready" from "could not ask".
    """
    if timeout is None or timeout < 0:
        raise ValueError("wait_until needs a non-negative timeout")
    start = clock()
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value, round(clock() - start, 3)
            last = value
        except RunbookError as exc:
            last = exc.msg
        elapsed = clock() - start
        if elapsed >= timeout:
            raise RunbookError(
                f"timed out after {timeout}s waiting for {what} (last observation: {last!r}); "
                "raise the timeout or check the target",
                waited_seconds=round(elapsed, 3),
            )
        sleep(min(interval, max(0.0, timeout - elapsed)))
