# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe interface: one class per target type, and the helpers every type shares.

A probe validates its own fields (before anything is contacted) and checks its target once per call of
``check``; retries, concurrency and the overall deadline are the runner's business, not the probe's.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError
from ansible_collections.ops.runbooks.plugins.module_utils._common.validate import duration_seconds, positive

MASK = "********"


class ProbeFailed(Exception):
    """The target answered, but not as expected (wrong status, pattern not found, certificate expiring...)."""

    def __init__(self, msg, **detail):
        super().__init__(msg)
        self.msg = msg
        self.detail = detail


class Probe:
    """One target of one type.

    Subclasses set ``type``, ``options`` (Ansible sub-option specs of the fields the type takes, without
    defaults so a field given to the wrong type can be told apart from an unset one), ``defaults``,
    ``required`` and ``requirement``, and implement ``check``.
    """

    type = None
    options = {}
    defaults = {}
    required = ()
    #: (library, available, import traceback); checked only when a target of this type is given
    requirement = None

    def __init__(self, target, where, retries=None, retry_delay=1.0):
        """``retries`` and ``retry_delay`` apply when the target does not set its own; ``retries`` None means
        retry until the overall timeout."""
        self.where = where
        self.fields = {k: self.defaults.get(k) if target.get(k) is None else target[k] for k in self.options}
        for field in self.required:
            if self.fields[field] in (None, ""):
                raise ParameterError(self.param(field), f"required for type {self.type}")
        self.validate()
        self.name = target.get("name") or self.default_name()
        self.retries = positive(_given(target, "retries", retries), self.param("retries"), allow_zero=True)
        self.retry_delay = duration_seconds(_given(target, "retry_delay", retry_delay), self.param("retry_delay"))
        self.max_latency = positive(duration_seconds(target.get("max_latency"), self.param("max_latency")),
                                    self.param("max_latency"))

    def param(self, field):
        return f"{self.where}.{field}"

    def validate(self):
        """Raise ParameterError naming ``self.param(field)`` for a bad field value."""

    @property
    def address(self):
        """Where the target is, for default names and messages; never carries a secret."""
        return f"{self.fields['host']}:{self.fields['port']}"

    def default_name(self):
        return f"{self.type} {self.address}"

    def secrets(self):
        """Secret values a result or an error message must never show: the no_log fields' values."""
        return [self.fields[k] for k, spec in self.options.items() if spec.get("no_log") and self.fields[k]]

    def prepare(self, shared):
        """Take the resources ``check`` needs (clients, SSL contexts) from ``shared`` (a runner.Shared) before any
        timing starts, so the first target does not pay for them in its latency."""

    async def check(self):
        """Check the target once. Return a JSON-serialisable ``detail`` dict; raise ProbeFailed when the
        target answers wrongly, any other exception when it cannot be reached or asked."""
        raise NotImplementedError


def _given(target, field, default):
    return default if target.get(field) is None else target[field]


def ca_file(value, param):
    if value is not None and not os.path.isfile(value):
        raise ParameterError(param, f"{value!r} is not a file; give a PEM file of trusted certificate authorities")
    return value


def port(value, param):
    if value is not None and not 1 <= value <= 65535:
        raise ParameterError(param, f"must be between 1 and 65535, got {value}")
    return value


def redact_url(url):
    """``url`` without its userinfo (``https://user:pw@host`` -> ``https://********@host``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=f"{MASK}@{parts.netloc.rpartition('@')[2]}"))


def url_secret(url):
    """The secret part of a URL's userinfo: the password, or the user when it is a bare token."""
    parts = urlsplit(url)
    return parts.password or parts.username if "@" in parts.netloc else None


def scrub(value, secrets):
    """``value`` with every occurrence of a secret masked, however deep in dicts and lists it sits."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, secrets) for v in value]
    return value


def describe(exc):
    """One line for an exception from a client library: its class, its message and, when a library wrapped
    it, the original cause (``ConnectError: All connection attempts failed ([Errno 111] Connect call failed)``)."""
    text = _first_line(exc)
    root = exc
    while (root.__cause__ or root.__context__) is not None:
        root = root.__cause__ or root.__context__
    if root is not exc and _first_line(root) and _first_line(root) not in text:
        text = f"{text} ({_first_line(root)})" if text else _first_line(root)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
