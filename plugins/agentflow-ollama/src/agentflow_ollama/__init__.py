"""agentflow-ollama: the ``ollama:`` engine provider for AgentFlow.

Importing this package is cheap; httpx is imported when an engine is made.
"""

__version__ = "0.1.0"
