"""The plugin as AgentFlow finds it: an installed entry point, a spec that is plain data."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import jsonschema
import pytest
from agentflow_sympy.spec import SPEC


def test_the_entry_point_names_the_plugin_module() -> None:
    found = [ep for ep in metadata.entry_points(group="agentflow") if ep.name == "sympy"]
    assert len(found) == 1, "install the plugin first: pip install -e plugins/agentflow-sympy"
    assert found[0].value == "agentflow_sympy.plugin"
    assert found[0].dist is not None and found[0].dist.name == "agentflow-sympy"


def test_discovery_does_not_import_sympy() -> None:
    # Listing tools must stay cheap: only the factory imports SymPy.
    code = "import sys, agentflow_sympy.plugin; assert 'sympy' not in sys.modules, 'sympy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("example", SPEC.examples, ids=lambda e: e.description)
def test_the_examples_match_the_schema(example: object) -> None:
    jsonschema.validate(dict(example.arguments), SPEC.input_schema)  # type: ignore[attr-defined]
