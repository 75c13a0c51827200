# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type procedures, clients and backends raise for expected failures."""

from __future__ import annotations


class RunbookError(Exception):
    """An expected failure: the message names the object, the operation and what to do next.

    ``details`` travel into the module's failure result (``fail_json(msg=..., **details)``), so they must
    never carry a secret value.
    """

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


class ParameterError(RunbookError):
    """Bad input, detected before anything is touched. ``param`` names the offending option."""

    def __init__(self, param, msg, **details):
        super().__init__(f"{param}: {msg}", parameter=param, **details)
        self.param = param
