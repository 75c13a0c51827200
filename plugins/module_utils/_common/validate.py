# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks that run before any connection is opened, so bad input never reaches a server."""

from __future__ import annotations

import re

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import ParameterError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "sec": 1, "ms": 0.001, "m": 60, "min": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "kB": 1024, "KB": 1024, "KiB": 1024, "MB": 1024**2, "MiB": 1024**2,
               "GB": 1024**3, "GiB": 1024**3, "TB": 1024**4, "TiB": 1024**4}


def identifier(value, param, max_parts=1):
    """Return the parts of a plain SQL identifier such as ``public.orders``.

    Only unquoted-style names are accepted (letters, digits, ``_`` and ``$``, at most 63 characters a part);
    anything else, ``x; DROP TABLE y`` included, fails naming the parameter.
    """
    if not isinstance(value, str) or not value:
        raise ParameterError(param, f"expected a name, got {value!r}")
    parts = value.split(".")
    if len(parts) > max_parts or not all(_IDENT.match(p) for p in parts):
        shape = "name" if max_parts == 1 else "name or schema.name"
        raise ParameterError(
            param,
            f"{value!r} is not a valid {shape}: use letters, digits, '_' or '$' (at most 63 characters, "
            "not starting with a digit)",
        )
    return tuple(parts)


def identifiers(values, param, max_parts=1):
    return [identifier(v, f"{param}[{i}]", max_parts) for i, v in enumerate(values or [])]


def duration_seconds(value, param):
    """Parse ``30``, ``30s``, ``500ms``, ``5min``, ``2h``, ``1d`` into seconds (float)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ParameterError(param, f"{value!r} is not a duration: use a number of seconds or e.g. 500ms, 30s, "
                                        "5min, 2h, 1d")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 0:
        raise ParameterError(param, f"{value!r} must not be negative")
    return seconds


def size_bytes(value, param):
    """Parse ``1048576``, ``512kB``, ``1MB``, ``2 GiB`` into bytes (int). Units are powers of 1024."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ParameterError(param, f"{value!r} is not a size: use a number of bytes or e.g. 512kB, 1MB, 2GB")
        size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
    if size < 0:
        raise ParameterError(param, f"{value!r} must not be negative")
    return size


def positive(value, param, allow_zero=False):
    if value is None:
        return None
    if value < 0 or (value == 0 and not allow_zero):
        raise ParameterError(param, f"must be {'zero or more' if allow_zero else 'greater than zero'}, got {value}")
    return value
