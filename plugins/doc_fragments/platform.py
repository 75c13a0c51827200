# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documents the options added by module_utils._common.argspec.platform_argspec().

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  platform:
    description:
      - The platform backend that carries out platform-specific steps. Inventories usually set it from
        C(runbook_platform).
      - V(self_managed) is for servers run by your own hosts or containers, reached directly over the network.
    type: str
    default: self_managed
    choices: [self_managed]
  platform_settings:
    description:
      - Backend-specific settings (for example a Compose project directory or an Azure resource group).
    type: dict
    default: {}
"""
