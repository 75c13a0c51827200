# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose: blue/green slots behind the proxy (traffic_switch)."""

from __future__ import annotations


class TrafficMixin:
    """Uses ``self.engine`` (ComposeEngine); write methods are marked @writes."""
