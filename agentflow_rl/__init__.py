"""Measuring and improving the agent: benchmarks, evaluation and Flow-GRPO (not yet built)."""
