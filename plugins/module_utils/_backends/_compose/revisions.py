# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose: recorded revisions and rollback (app_rollback)."""

from __future__ import annotations


class RevisionsMixin:
    """Uses ``self.engine`` (ComposeEngine); write methods are marked @writes."""
