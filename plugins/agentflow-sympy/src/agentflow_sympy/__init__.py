"""agentflow-sympy: the ``symbolic_math`` tool for AgentFlow.

Importing this package is cheap; SymPy is imported only when the tool is enabled in a solve.
"""

__version__ = "0.1.0"
