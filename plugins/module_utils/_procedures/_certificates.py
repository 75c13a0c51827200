# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks the certificate procedures share: host names, ports, URLs. They run before anything is
contacted, so a name such as ``www.example.com; rm -rf /`` never reaches a CA, a DNS server or a proxy."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def check_host_name(value, param, allow_ip=False, allow_wildcard=False):
    """A DNS host name (``www.example.com``), optionally an IP address or a ``*.`` wildcard; returns it."""
    if not isinstance(value, str) or not value:
        raise ParameterError(param, f"expected a host name, got {value!r}")
    if allow_ip:
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
    name = value[2:] if allow_wildcard and value.startswith("*.") else value
    labels = name.rstrip(".").split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        kinds = "a host name" + (", a *.wildcard" if allow_wildcard else "") + (" or an IP address" if allow_ip else "")
        raise ParameterError(param, f"{value!r} is not {kinds}: use labels of letters, digits and '-' separated by "
                                    "dots")
    return value


def check_port(value, param):
    if value is None or not 1 <= value <= 65535:
        raise ParameterError(param, f"must be between 1 and 65535, got {value}")
    return value


def check_https_url(value, param):
    parts = urlsplit(value or "")
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in value):
        raise ParameterError(param, f"{value!r} is not an https:// URL (such as "
                                    "https://acme-v02.api.letsencrypt.org/directory)")
    return value
