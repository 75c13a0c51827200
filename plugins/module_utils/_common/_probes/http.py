# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP(S) probe: status code, body pattern; the latency limit is applied by the runner to every type."""

from __future__ import annotations

import re
import traceback
from urllib.parse import urlsplit

from ansible_collections.ops.runbooks.plugins.module_utils._common._probes.base import (
    Probe,
    ProbeFailed,
    ca_file,
    redact_url,
    url_secret,
)
from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError

try:
    import httpx

    HAS_HTTPX, HTTPX_IMPORT_ERROR = True, None
except ImportError:
    HAS_HTTPX, HTTPX_IMPORT_ERROR = False, traceback.format_exc()

# Enough for any health page; a huge body is not read to the end just to search it.
BODY_LIMIT = 64 * 1024
_METHOD = re.compile(r"^[A-Z]+$")
# Header values that are credentials: hidden from the task output like no_log values.
_SECRET_HEADER = re.compile(r"auth|token|key|secret|cookie|password", re.IGNORECASE)


class HttpProbe(Probe):
    type = "http"
    options = dict(
        url=dict(type="str"),
        method=dict(type="str"),
        status_code=dict(type="list", elements="int"),
        body_regex=dict(type="str"),
        headers=dict(type="dict"),
        validate_certs=dict(type="bool"),
        ca_cert=dict(type="path"),
    )
    defaults = dict(method="GET", status_code=[200], validate_certs=True, headers={})
    required = ("url",)
    requirement = ("httpx", HAS_HTTPX, HTTPX_IMPORT_ERROR)

    def validate(self):
        f = self.fields
        if not _http_url(f["url"]):
            raise ParameterError(self.param("url"), f"{redact_url(f['url'])!r} is not an http:// or https:// URL "
                                                    "with a host (and a port between 1 and 65535 if any)")
        f["method"] = f["method"].upper()
        if not _METHOD.match(f["method"]):
            raise ParameterError(self.param("method"), f"{f['method']!r} is not an HTTP method such as GET or HEAD")
        for i, code in enumerate(f["status_code"]):
            if not 100 <= code <= 599:
                raise ParameterError(self.param(f"status_code[{i}]"), f"{code} is not an HTTP status (100-599)")
        if f["body_regex"] is not None:
            try:
                self.pattern = re.compile(f["body_regex"])
            except re.error as exc:
                raise ParameterError(self.param("body_regex"), f"not a valid regular expression: {exc}") from None
        f["headers"] = {str(k): str(v) for k, v in f["headers"].items()}
        ca_file(f["ca_cert"], self.param("ca_cert"))

    @property
    def address(self):
        return redact_url(self.fields["url"])

    def secrets(self):
        values = super().secrets() + [url_secret(self.fields["url"])]
        values += [v for k, v in self.fields["headers"].items() if _SECRET_HEADER.search(k)]
        return [v for v in values if v]

    def default_name(self):
        return self.address

    def prepare(self, shared):
        f = self.fields
        url = urlsplit(f["url"])
        # One client (connection pool) per origin and TLS setting: targets on one server share connections,
        # and no pool grows large, as httpx's pool slows down with the number of connections it juggles
        # (500 local targets: 2.2 s through one pool, 0.9 s through one per origin).
        origin = (url.scheme, url.hostname, url.port, f["validate_certs"], f["ca_cert"])
        self.client = shared.resource(("httpx", *origin), lambda: httpx.AsyncClient(
            verify=shared.ssl_context(f["validate_certs"], f["ca_cert"]),
            limits=httpx.Limits(max_connections=shared.concurrency, max_keepalive_connections=shared.concurrency),
            # No client timeout: the runner bounds every attempt (max_latency) and the whole check (timeout).
            timeout=None,
        ))

    async def check(self):
        f = self.fields
        async with self.client.stream(f["method"], f["url"], headers=f["headers"]) as response:
            body = b""
            # Read to the end when the body is small, so the connection goes back to the pool for the next target.
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= BODY_LIMIT:
                    break
        detail = {"status": response.status_code, "http_version": response.http_version}
        if response.status_code not in f["status_code"]:
            raise ProbeFailed(f"status {response.status_code}, expected one of {f['status_code']}", **detail)
        if f["body_regex"] is not None:
            text = body[:BODY_LIMIT].decode(response.encoding or "utf-8", errors="replace")
            if not self.pattern.search(text):
                raise ProbeFailed(f"body does not match {f['body_regex']!r} (first {BODY_LIMIT} bytes searched)",
                                  **detail)
        return detail


def _http_url(url):
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port out of range or a malformed IPv6 address
        return False
