# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose: evidence and cleanup (evidence_collect, cleanup)."""

from __future__ import annotations


class HousekeepingMixin:
    """Uses ``self.engine`` (ComposeEngine); write methods are marked @writes."""
