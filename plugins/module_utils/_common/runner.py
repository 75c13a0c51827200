# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``run_procedure``: the whole ``main()`` of a runbook module."""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.ops.runbooks.plugins.module_utils._common.errors import RunbookError

_RESERVED = {"msg", "failed", "changed", "invocation"}


def run_procedure(procedure_cls):
    module = procedure_cls.argument_spec().create_ansible_module()
    for name, available, error in procedure_cls.requirements:
        if not available:
            module.fail_json(msg=missing_required_lib(name), exception=error)
    procedure = procedure_cls(module)
    try:
        result = procedure.run()
    except RunbookError as exc:
        details = {k: v for k, v in exc.details.items() if k not in _RESERVED}
        if procedure.warnings:
            for warning in procedure.warnings:
                module.warn(warning)
        module.fail_json(msg=exc.msg, **details)
    finally:
        procedure.close()
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)
