# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A single host running Docker Compose: the application's services and its self-managed databases.

Capabilities live in mixins under ``_compose`` (one file each); databases in containers are promoted and
fenced over SQL like any self-managed server.
"""

from __future__ import annotations

from ansible_collections.ops.runbooks.plugins.module_utils._backends._compose.certificates import CertificatesMixin
from ansible_collections.ops.runbooks.plugins.module_utils._backends._compose.engine import ComposeEngine
from ansible_collections.ops.runbooks.plugins.module_utils._backends._compose.housekeeping import HousekeepingMixin
from ansible_collections.ops.runbooks.plugins.module_utils._backends._compose.replicas import ReplicasMixin
from ansible_collections.ops.runbooks.plugins.module_utils._backends._compose.revisions import RevisionsMixin
from ansible_collections.ops.runbooks.plugins.module_utils._backends._compose.secrets import SecretStoreMixin
from ansible_collections.ops.runbooks.plugins.module_utils._backends._compose.traffic import TrafficMixin
from ansible_collections.ops.runbooks.plugins.module_utils._backends.self_managed import SelfManagedBackend


class ComposeBackend(ReplicasMixin, TrafficMixin, RevisionsMixin, HousekeepingMixin, SecretStoreMixin,
                     CertificatesMixin, SelfManagedBackend):
    platform = "compose"

    def __init__(self, settings=None, check_mode=False):
        super().__init__(settings, check_mode)
        self._engine = None

    @property
    def engine(self):
        # Built on first use, so a database-only call never needs Docker or compose settings.
        if self._engine is None:
            self._engine = ComposeEngine(self.settings)
        return self._engine

    def close(self):
        if self._engine is not None:
            self._engine.close()
