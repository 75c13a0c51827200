# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes (AKS or any conformant cluster): the application's Deployments in one namespace.

Capabilities live in mixins under ``_k8s`` (one file each). Databases in the cluster are promoted and fenced
over SQL like any self-managed server.
"""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.client import K8sClient
from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.housekeeping import HousekeepingMixin
from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.secrets import SecretStoreMixin
from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.traffic import TrafficMixin
from ansible_collections.ops.runbooks.plugins.module_utils._backends._k8s.workloads import WorkloadsMixin
from ansible_collections.ops.runbooks.plugins.module_utils._backends.self_managed import SelfManagedBackend


class K8sBackend(WorkloadsMixin, TrafficMixin, HousekeepingMixin, SecretStoreMixin, SelfManagedBackend):
    platform = "k8s"

    def __init__(self, settings=None, check_mode=False):
        super().__init__(settings, check_mode)
        self._client = None

    @property
    def client(self):
        # Built (and the settings checked) on first use, so a database-only call needs no cluster settings; the
        # first use is always a read, so bad settings fail before anything changes.
        if self._client is None:
            self._client = K8sClient(self.settings)
        return self._client

    def close(self):
        if self._client is not None:
            self._client.close()
