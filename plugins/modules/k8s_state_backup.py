#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_state_backup
short_description: Export a Kubernetes namespace's objects and ConfigMaps into a tarball with a manifest
version_added: 0.1.0
description:
  - Exports the objects of O(namespace) listed in O(kinds) (by default Deployments, StatefulSets, DaemonSets,
    Services, ConfigMaps, ServiceAccounts, PersistentVolumeClaims, CronJobs, HorizontalPodAutoscalers,
    PodDisruptionBudgets, Ingresses, NetworkPolicies, Roles and RoleBindings) as JSON manifests that can be applied
    again (C(kubectl apply -f)), into C(k8s-state-NAMESPACE-TIMESTAMP.tar.gz) in O(dest), with a C(manifest.json)
    (sha256 of every file) and a C(.sha256) file beside the tarball. Both are mode 0600.
  - Objects that have an owner (ReplicaSets, pods, Jobs of a CronJob) are left out, since their owner recreates
    them; fields the cluster fills in (status, uid, resourceVersion, managedFields, a Service's cluster IPs) are
    dropped, and so is the C(kube-root-ca.crt) ConfigMap the control plane makes in every namespace.
  - Secrets are exported as their names, types and key lists only (O(secrets=names), the default). With
    O(secrets=encrypted) their manifests, values included, are also written encrypted with AES-256-GCM under a
    key derived with scrypt from O(encryption_passphrase); without the passphrase the values cannot be read back.
    Service-account token Secrets are never exported.
  - A backup is written only when the namespace differs from the newest backup of it in O(dest) (compared by the
    manifest's C(fingerprint)), so a second run on an unchanged namespace reports C(changed=false).
  - The tarball is read back and every file checked against the manifest; a tarball that does not verify is
    removed and the module fails.
  - Only reads the cluster. In check mode, reads the namespace and reports whether a backup would be written.
extends_documentation_fragment:
  - ops.runbooks.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  namespace:
    description:
      - The namespace to export. Defaults to C(namespace) of O(platform_settings), then V(default).
    type: str
  dest:
    description:
      - Directory the tarball is written to (created with mode 0700 when missing).
    type: path
    required: true
  kinds:
    description:
      - The kinds of objects to export.
    type: list
    elements: str
    default: [ConfigMap, CronJob, DaemonSet, Deployment, HorizontalPodAutoscaler, Ingress, NetworkPolicy,
              PersistentVolumeClaim, PodDisruptionBudget, Role, RoleBinding, Service, ServiceAccount, StatefulSet]
  secrets:
    description:
      - V(names) lists each Secret's name, type and keys, never a value.
      - V(encrypted) also writes the Secrets' manifests, values included, encrypted with O(encryption_passphrase).
      - V(none) leaves Secrets out entirely (the module then needs no permission to read them).
    type: str
    default: names
    choices: [names, encrypted, none]
  encryption_passphrase:
    description:
      - Passphrase the Secrets are encrypted with when O(secrets=encrypted), at least 12 characters. Required then,
        and refused otherwise. Never logged or returned.
    type: str
  platform_settings:
    description:
      - The cluster, as the C(platform_settings) of the app modules for platform V(k8s) take it (C(kubeconfig),
        C(context), C(namespace), C(request_timeout)); see C(inventories/aks).
    type: dict
    default: {}
requirements:
  - kubernetes (the Python client)
  - cryptography
notes:
  - The kubeconfig's user needs C(list) on the exported kinds, and on Secrets unless O(secrets=none).
author:
  - ops.runbooks maintainers (@ops-runbooks)
"""

EXAMPLES = r"""
- name: Nightly export of the shop namespace, Secrets as names only
  ops.runbooks.k8s_state_backup:
    platform_settings: "{{ runbook_platform_settings }}"
    namespace: shop
    dest: /var/backups/k8s

- name: Export with the Secrets, encrypted
  ops.runbooks.k8s_state_backup:
    platform_settings: "{{ runbook_platform_settings }}"
    namespace: shop
    dest: /var/backups/k8s
    secrets: encrypted
    encryption_passphrase: "{{ vault_k8s_backup_passphrase }}"
"""

RETURN = r"""
path:
  description: The tarball written (in check mode, the one that would be; unchanged, the newest existing one).
  returned: always
  type: str
  sample: /var/backups/k8s/k8s-state-shop-20240501T130000.000000Z.tar.gz
namespace:
  description: The namespace exported.
  returned: always
  type: str
fingerprint:
  description: sha256 over every exported document (keyed by the passphrase for encrypted Secrets); equal
    fingerprints mean an unchanged namespace.
  returned: always
  type: str
counts:
  description: How many objects of each kind were exported.
  returned: always
  type: dict
  sample: {Deployment: 2, Service: 1, ConfigMap: 3, Secret: 1}
secrets:
  description: Each Secret's C(name), C(type) and C(keys) (never a value); empty with O(secrets=none).
  returned: always
  type: list
  elements: dict
files:
  description: The files in the tarball with C(path), C(sha256) and C(size) (in check mode only C(path)).
  returned: always
  type: list
  elements: dict
sha256:
  description: sha256 of the tarball, also written to C(PATH.sha256).
  returned: when a backup was written
  type: str
size:
  description: Size of the tarball in bytes.
  returned: when a backup was written
  type: int
backups:
  description: The backups of the namespace in O(dest) after the run, oldest first.
  returned: always
  type: list
  elements: str
plan:
  description: What the run did or would do; empty when the newest backup is current.
  returned: always
  type: list
  elements: str
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
"""

from ansible_collections.ops.runbooks.plugins.module_utils._common.runner import run_procedure
from ansible_collections.ops.runbooks.plugins.module_utils._procedures.k8s_state_backup import K8sStateBackup


def main():
    run_procedure(K8sStateBackup)


if __name__ == "__main__":
    main()
