"""AgentFlow's built-in tools. Each registers through the public ``register_tools`` hook."""
