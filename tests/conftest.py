from __future__ import annotations

import pytest

import agentflow_tools.plugin
from agentflow_core.plugins import load_registry
from agentflow_core.registry import Registry


@pytest.fixture
def registry() -> Registry:
    """Built-ins only: tests never load whatever plugins happen to be installed."""
    return load_registry(entry_points=False, extra=[agentflow_tools.plugin])
