# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose: restart and scale (app_restart, app_scale)."""

from __future__ import annotations


class ReplicasMixin:
    """Uses ``self.engine`` (ComposeEngine); write methods are marked @writes."""
