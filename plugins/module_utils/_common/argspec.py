# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument-spec objects and the factories for shared option groups.

Each factory here has a doc fragment of the same name in ``plugins/doc_fragments`` that documents exactly
the options it adds; keep the two in step.
"""

from __future__ import annotations

import copy

from ansible.module_utils.basic import AnsibleModule

_EXTRA_KEYS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")


class ArgumentSpec:
    def __init__(self, argument_spec=None, **extra):
        unknown = set(extra) - set(_EXTRA_KEYS)
        if unknown:
            raise TypeError(f"unknown ArgumentSpec keys: {sorted(unknown)}")
        self.argument_spec = dict(argument_spec or {})
        self.extra = {k: list(extra.get(k) or []) for k in _EXTRA_KEYS if k != "required_by"}
        self.extra["required_by"] = dict(extra.get("required_by") or {})

    def update_argspec(self, **options):
        self.argument_spec.update(options)
        return self

    def update(self, **extra):
        for key, value in extra.items():
            if key == "required_by":
                self.extra[key].update(value)
            elif key in self.extra:
                self.extra[key].extend(value)
            else:
                raise TypeError(f"unknown ArgumentSpec key: {key}")
        return self

    def merge(self, other):
        self.argument_spec.update(copy.deepcopy(other.argument_spec))
        return self.update(**copy.deepcopy(other.extra))

    def create_ansible_module(self, **kwargs):
        kwargs.setdefault("supports_check_mode", True)
        return AnsibleModule(argument_spec=self.argument_spec, **self.extra, **kwargs)


def postgres_connection_argspec():
    """Connection options with the names users know from community.postgresql (doc fragment ``postgres``)."""
    return ArgumentSpec(
        dict(
            login_host=dict(type="str", default="", aliases=["host"]),
            login_port=dict(type="int", default=5432, aliases=["port"]),
            login_user=dict(type="str", default="postgres", aliases=["login"]),
            login_password=dict(type="str", default="", no_log=True),
            login_unix_socket=dict(type="str", default="", aliases=["unix_socket"]),
            db=dict(type="str", default="postgres", aliases=["login_db"]),
            ssl_mode=dict(type="str", default="prefer",
                          choices=["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]),
            ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
            ssl_cert=dict(type="path"),
            ssl_key=dict(type="path", no_log=False),
            connect_timeout=dict(type="int", default=10),
        )
    )


def platform_argspec():
    """The platform a procedure runs against (doc fragment ``platform``)."""
    from ansible_collections.ops.runbooks.plugins.module_utils._backends.base import available_platforms

    return ArgumentSpec(
        dict(
            platform=dict(type="str", default="self_managed", choices=available_platforms()),
            platform_settings=dict(type="dict", default={}),
        )
    )


def verify_argspec():
    """Probes a module that changes something runs to prove the change worked (doc fragment ``verify``)."""
    from ansible_collections.ops.runbooks.plugins.module_utils._common._probes import probe_options

    return ArgumentSpec(
        dict(
            verify=dict(type="list", elements="dict", default=[], options=probe_options()),
            verify_timeout=dict(type="raw", default=60),
        )
    )


def postgres_rpo_argspec():
    """The primary to measure replication lag against and the RPO limits (doc fragment ``postgres_rpo``).

    Unset ``primary`` suboptions inherit the top-level connection options.
    """
    return ArgumentSpec(
        dict(
            primary=dict(
                type="dict",
                options=dict(
                    login_host=dict(type="str", required=True),
                    login_port=dict(type="int"),
                    login_user=dict(type="str"),
                    login_password=dict(type="str", no_log=True),
                    db=dict(type="str"),
                ),
            ),
            max_lag_bytes=dict(type="raw"),
            max_lag_seconds=dict(type="raw"),
        )
    )
