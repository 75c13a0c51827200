"""Every shared argument-spec factory is documented 1:1 by the doc fragment of the same name."""

from __future__ import annotations

import importlib

import pytest
import yaml

from ansible_collections.ops.runbooks.plugins.module_utils._common import argspec

FACTORIES = {
    "postgres": argspec.postgres_connection_argspec,
    "platform": argspec.platform_argspec,
    "postgres_rpo": argspec.postgres_rpo_argspec,
    "verify": argspec.verify_argspec,
}


@pytest.mark.parametrize("fragment", sorted(FACTORIES))
def test_fragment_matches_factory(fragment):
    doc = importlib.import_module(f"ansible_collections.ops.runbooks.plugins.doc_fragments.{fragment}")
    documented = yaml.safe_load(doc.ModuleDocFragment.DOCUMENTATION)["options"]
    spec = FACTORIES[fragment]().argument_spec
    assert set(documented) == set(spec)
    for name, option in spec.items():
        doc_option = documented[name]
        assert doc_option["type"] == option.get("type", "str"), name
        assert doc_option.get("default") == option.get("default"), name
        assert doc_option.get("choices") == option.get("choices"), name
        assert doc_option.get("aliases", []) == option.get("aliases", []), name
        assert doc_option.get("description"), name
