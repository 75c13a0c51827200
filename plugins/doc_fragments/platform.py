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
        C(project_dir), and takes C(docker_host), C(files), C(env_file), the blue/green C(slots) and
        C(proxy) settings and the TLS C(certificates) the proxy serves (see C(inventories/compose)).
      - V(k8s) is a Kubernetes cluster (AKS or any other); O(platform_settings) takes C(kubeconfig) (default
        E(KUBECONFIG), then C(~/.kube/config)), C(context), C(namespace) (default V(default)), C(deployments) (a
        mapping from service names to Deployment names when they differ), the blue/green C(slots) (slot name to
        Deployment) and C(traffic) (C(service), the Service whose selector names the active slot, and
        C(slot_label), default V(slot)), C(request_timeout) (seconds per API request, default V(30)) and, for
        secret rotation, C(secret_store) (C(secret), the Secret whose keys are the store's entries, and
        C(config_map), the ConfigMap whose keys are the consumers' settings). A service is a Deployment and a
        replica one of its pods (see C(inventories/aks)).
    type: str
    default: self_managed
    choices: [compose, k8s, self_managed]
  platform_settings:
    description:
      - Backend-specific settings (for example a Compose project directory or an Azure resource group).
    type: dict
    default: {}
"""
