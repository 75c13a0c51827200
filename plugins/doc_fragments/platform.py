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
      - V(self_managed) is for servers run by your own hosts, reached directly over the network (database
        procedures only).
      - V(compose) is a single host running Docker Compose; O(platform_settings) then needs C(project_name) and
        C(project_dir), and takes C(docker_host), C(files), C(env_file) and the blue/green C(slots) and
        C(proxy) settings (see C(inventories/compose)).
    type: str
    default: self_managed
    choices: [compose, self_managed]
  platform_settings:
    description:
      - Backend-specific settings (for example a Compose project directory or an Azure resource group).
    type: dict
    default: {}
"""
