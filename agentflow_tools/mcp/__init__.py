"""MCP both ways: the tools of MCP servers as AgentFlow tools, and AgentFlow served over MCP.

Nothing here imports the ``mcp`` SDK at import time; it is loaded when a server is started.
"""
